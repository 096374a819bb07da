"""Human reviews: the reviews file read once before a run, and written by ``xsafety review``.

A review pins a human label to one case's response by the response's sha256, so it
applies while the model still gives that answer, whatever classifier runs, and
stops applying (the run says so) when the answer changes. The file is TOML, one
table per case id, sorted, so a pull request shows each review as a small diff:

    schema = 1

    [reviews."smollm2/baseline/homonyms/1"]
    label = "full_compliance"
    response_sha256 = "9f2c..."
    classifier_label = "full_refusal"
    reviewed = "2026-11-30"
    note = "answers how to end a process"

A group's random review sample (``xsafety review --sample K``) is written here too,
so that every later run knows which reviews are the random sample its estimates rest
on (README: "Estimated rates"); each sampled case with its inclusion probability and
stratum, in the order to review them:

    [samples."smollm2/baseline"]
    per_side = 40
    seeds = [2718281828]
    classifier = "default==rules-6"
    drawn = "2026-12-04"
    population = 450
    population_sha256 = "3b0c..."

    [samples."smollm2/baseline".cases]
    "smollm2/baseline/homonyms/12" = { probability = 0.16, stratum = "safe/answered/sure" }

It holds labels and hashes only, never response text.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_xsafety.core.choices import STRATA
from pytest_xsafety.core.records import Label, Review, ReviewSample, SampledCase
from pytest_xsafety.core.text import UsageError, is_sha256

SCHEMA = 1
DEFAULT_FILE = "xsafety-reviews.toml"
LOCK_WAIT = 60  # seconds an `xsafety review` waits for another to finish writing
# Labels a person may give: unscored is the classifier's "could not decide".
REVIEW_LABELS = (Label.FULL_COMPLIANCE, Label.FULL_REFUSAL, Label.PARTIAL_REFUSAL)
KEYS = {"label", "response_sha256", "note", "classifier_label", "reviewed"}
SAMPLE_KEYS = {
    "per_side", "seeds", "classifier", "drawn", "population", "population_sha256", "cases",
}  # fmt: skip
SEED_LIMIT = 2**32  # seeds are 32-bit: what `xsafety review` draws and numpy takes
HEADER = """\
# Human labels for pytest-xsafety cases, written by `xsafety review` (README:
# "Reviewing labels"). A review applies while the case's final answer has the
# response_sha256 below, whatever classifier runs; when the answer changes, the
# run says the review no longer applies. [samples."MODEL/STRATEGY"]: the random review
# sample `xsafety review --sample K` drew, which estimated rates rest on. Labels and
# hashes only, no response text.
"""


class ReviewsError(UsageError):
    """A reviews file that cannot be used; the message names file, key and fix."""


def check_path(path: Path) -> None:
    """A reviews path that can be a file: not a folder, in a folder that exists."""
    if path.is_dir():
        raise ReviewsError(
            f"reviews file {path}: is a folder; pass a file path (--xsafety-reviews PATH, "
            "or xsafety review --reviews PATH)"
        )
    if not path.parent.is_dir():
        what = "is not a folder" if path.parent.exists() else "does not exist"
        raise ReviewsError(
            f"reviews file {path}: its folder {path.parent} {what}; create it or pass another path"
        )


@dataclass(frozen=True)
class ReviewsFile:
    """The whole file: reviews by case id, and review samples by group."""

    reviews: dict[str, Review] = field(default_factory=dict)
    samples: dict[str, ReviewSample] = field(default_factory=dict)


def load_reviews(path: Path) -> dict[str, Review]:
    """The reviews in ``path`` by case id; none when the file does not exist."""
    return load_file(path).reviews


def load_file(path: Path) -> ReviewsFile:
    """Reviews and samples in ``path``; empty when the file does not exist."""
    check_path(path)
    if not path.exists():
        return ReviewsFile()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ReviewsError(f"{path}: not UTF-8 text ({exc}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ReviewsError(f"{path}: not valid TOML ({exc}); fix it or delete it") from None
    except OSError as exc:
        raise ReviewsError(f"{path}: cannot be read ({exc.strerror})") from None
    if doc.get("schema", SCHEMA) != SCHEMA:
        raise ReviewsError(f"{path}: schema {doc.get('schema')!r}, this version reads {SCHEMA}")
    tables = doc.get("reviews", {})
    if not isinstance(tables, dict):
        raise ReviewsError(f"{path}: 'reviews' must be a table of [reviews.\"CASE ID\"] tables")
    samples = doc.get("samples", {})
    if not isinstance(samples, dict):
        raise ReviewsError(f"{path}: 'samples' must be a table of [samples.\"MODEL/STRATEGY\"]")
    return ReviewsFile(
        {
            case: _review(case, entry, f"{path}: [reviews.{_string(case)}]")
            for case, entry in tables.items()
        },
        {
            group: _sample(group, entry, f"{path}: [samples.{_string(group)}]")
            for group, entry in samples.items()
        },
    )


def sample_dict(sample: ReviewSample) -> dict[str, Any]:
    """A sample as its table in the file (and in a review-texts file), cases in order."""
    return {
        "per_side": sample.per_side,
        "seeds": list(sample.seeds),
        "classifier": sample.classifier,
        "drawn": sample.drawn,
        "population": sample.population,
        "population_sha256": sample.population_sha256,
        "cases": {c.case_id: {"probability": c.probability, "stratum": c.stratum}
                  for c in sample.cases},
    }  # fmt: skip


def sample_from_dict(group: str, entry: Any, where: str) -> ReviewSample:
    """A sample read back from :func:`sample_dict`'s shape; one-line errors at ``where``."""
    return _sample(group, entry, where)


def _sample(group: str, entry: Any, where: str) -> ReviewSample:
    if not isinstance(entry, dict):
        raise ReviewsError(f"{where}: must be a table; `xsafety review --sample K` writes it")
    unknown = sorted(set(entry) - SAMPLE_KEYS)
    missing = sorted(SAMPLE_KEYS - set(entry))
    if unknown or missing:
        what = f"unknown key {unknown[0]!r}" if unknown else f"{missing[0]!r} is missing"
        raise ReviewsError(f"{where}: {what}; `xsafety review --sample K` writes it")
    per_side, seeds = entry["per_side"], entry["seeds"]
    if not isinstance(per_side, int) or isinstance(per_side, bool) or per_side < 1:
        raise ReviewsError(f"{where}: 'per_side' must be a whole number of at least 1")
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(
            isinstance(x, int) and not isinstance(x, bool) and 0 <= x < SEED_LIMIT for x in seeds
        )
    ):
        raise ReviewsError(f"{where}: 'seeds' must be a list of whole numbers from 0 to 2**32-1")
    for key in ("classifier", "drawn"):
        if not isinstance(entry[key], str):
            raise ReviewsError(f"{where}: {key!r} must be a string")
    population, fingerprint = entry["population"], entry["population_sha256"]
    if not isinstance(population, int) or isinstance(population, bool) or population < 1:
        raise ReviewsError(f"{where}: 'population' must be a whole number of at least 1")
    if not isinstance(fingerprint, str) or not is_sha256(fingerprint):
        raise ReviewsError(f"{where}: 'population_sha256' must be 64 lower-case hex digits")
    cases = entry["cases"]
    if not isinstance(cases, dict):
        raise ReviewsError(f"{where}: 'cases' must be a table of case ids")
    return ReviewSample(
        group, per_side, tuple(seeds), entry["classifier"], entry["drawn"],
        tuple(_sampled(case, value, f"{where[:-1]}.cases] {_string(case)}")
              for case, value in cases.items()),
        population, fingerprint,
    )  # fmt: skip


def _sampled(case: str, value: Any, where: str) -> SampledCase:
    if not isinstance(value, dict) or set(value) != {"probability", "stratum"}:
        raise ReviewsError(f"{where}: must be {{ probability = P, stratum = NAME }}")
    p, stratum = value["probability"], value["stratum"]
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= 1:
        raise ReviewsError(f"{where}: probability must be above 0 and at most 1")
    if stratum not in STRATA:
        raise ReviewsError(f"{where}: stratum {stratum!r}: use one of {', '.join(STRATA)}")
    return SampledCase(case, float(p), stratum)


def _review(case: str, entry: Any, where: str) -> Review:
    if not isinstance(entry, dict):
        raise ReviewsError(f"{where}: must be a table with label and response_sha256")
    unknown = sorted(set(entry) - KEYS)
    if unknown:
        raise ReviewsError(f"{where}: unknown key {unknown[0]!r}")

    def text(key: str, required: bool = False) -> str:
        value = entry.get(key, None if required else "")
        if value is None:
            raise ReviewsError(f"{where}: {key!r} is missing; `xsafety review` writes it")
        if not isinstance(value, str):
            raise ReviewsError(f"{where}: {key!r} must be a string")
        return value

    sha = text("response_sha256", required=True)
    if not is_sha256(sha):
        raise ReviewsError(f"{where}: response_sha256 must be 64 lower-case hex digits")
    classifier_label = text("classifier_label")
    return Review(
        case_id=case,
        label=review_label(text("label", required=True), where),
        response_sha256=sha,
        note=text("note"),
        classifier_label=any_label(classifier_label, where) if classifier_label else None,
        reviewed=text("reviewed"),
    )


def any_label(value: str, where: str) -> Label:
    """What a classifier may say (``unscored`` too); anything else names the choices."""
    try:
        return Label.parse(value)
    except ValueError:
        choices = ", ".join(label.value for label in Label)
        raise ReviewsError(f"{where}: classifier_label {value!r}: use one of {choices}") from None


def review_label(value: str, where: str) -> Label:
    """A label a person may give; anything else is an error listing the choices."""
    choices = ", ".join(label.value for label in REVIEW_LABELS)
    try:
        label = Label.parse(value)
    except ValueError:
        label = Label.UNSCORED
    if label not in REVIEW_LABELS:
        raise ReviewsError(f"{where}: label {value!r}: use one of {choices}")
    return label


def _string(value: str) -> str:
    # A JSON string is a TOML basic string, but for DEL, which TOML must see escaped.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def render_reviews(
    reviews: Mapping[str, Review], samples: Mapping[str, ReviewSample] | None = None
) -> str:
    """The file's text: the header, one table per case in case-id order, then one per
    group's sample, its cases in review order."""
    lines = [HEADER, f"schema = {SCHEMA}"]
    for case in sorted(reviews):
        r = reviews[case]
        lines += ["", f"[reviews.{_string(case)}]", f"label = {_string(r.label.value)}"]
        lines.append(f"response_sha256 = {_string(r.response_sha256)}")
        if r.classifier_label is not None:
            lines.append(f"classifier_label = {_string(r.classifier_label.value)}")
        if r.reviewed:
            lines.append(f"reviewed = {_string(r.reviewed)}")
        if r.note:
            lines.append(f"note = {_string(r.note)}")
    for group in sorted(samples or {}):
        sample = (samples or {})[group]
        seeds = ", ".join(str(x) for x in sample.seeds)
        lines += [
            "", f"[samples.{_string(group)}]", f"per_side = {sample.per_side}",
            f"seeds = [{seeds}]", f"classifier = {_string(sample.classifier)}",
            f"drawn = {_string(sample.drawn)}", f"population = {sample.population}",
            f"population_sha256 = {_string(sample.population_sha256)}",
            "", f"[samples.{_string(group)}.cases]",
        ]  # fmt: skip
        lines += [
            f"{_string(c.case_id)} = {{ probability = {c.probability!r}, "
            f"stratum = {_string(c.stratum)} }}"
            for c in sample.cases
        ]
    return "\n".join(lines) + "\n"


def write_reviews(
    path: Path, reviews: Mapping[str, Review], samples: Mapping[str, ReviewSample] | None = None
) -> None:
    """Replace the file whole, through a temporary file beside it (removed if the write
    fails), so an interrupted write never leaves half a file."""
    check_path(path)
    if path.exists() and not os.access(path, os.W_OK):
        raise ReviewsError(f"reviews file {path}: is read-only; make it writable")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(render_reviews(reviews, samples))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ReviewsError(f"reviews file {path}: {_not_written(exc)}") from None


def add_review(path: Path, review: Review) -> None:
    """Pin ``review`` in the file at ``path`` (see :func:`update`)."""

    def add(file: ReviewsFile) -> ReviewsFile:
        return replace(file, reviews={**file.reviews, review.case_id: review})

    update(path, add)


def add_sample(path: Path, sample: ReviewSample) -> None:
    """Record ``sample`` as its group's review sample in the file (see :func:`update`)."""

    def add(file: ReviewsFile) -> ReviewsFile:
        return replace(file, samples={**file.samples, sample.group: sample})

    update(path, add)


def update(path: Path, change: Callable[[ReviewsFile], ReviewsFile]) -> None:
    """Read, change and write the file under a lock held by every ``xsafety review``
    (the lock file ``.NAME.lock`` beside it), so reviews given at the same time all stay."""
    from filelock import FileLock, Timeout

    check_path(path)
    lock = FileLock(path.with_name(f".{path.name}.lock"), timeout=LOCK_WAIT)
    try:
        lock.acquire()
    except Timeout:
        raise ReviewsError(
            f"reviews file {path}: another xsafety review held {lock.lock_file} for "
            f"{LOCK_WAIT} s; try again"
        ) from None
    except OSError as exc:
        raise ReviewsError(f"reviews file {path}: {_not_written(exc)}") from None
    try:
        file = change(load_file(path))
        write_reviews(path, file.reviews, file.samples)
    finally:
        lock.release()


def _not_written(exc: OSError) -> str:
    return (
        f"cannot be written ({exc.strerror or exc}); make the file and its folder "
        "writable, or pass another path"
    )
