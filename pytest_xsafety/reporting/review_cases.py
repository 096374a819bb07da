"""Where ``xsafety review`` finds a run's cases and their texts.

**The run.** A run's record lives in the pytest cache of its rootdir
(:mod:`.lastrun`). ``pytest examples/x`` from a clone's root picks ``examples/x``
as rootdir when that folder has its own configuration, so the record is in
``examples/x/.pytest_cache``, not where the user stands. Without an explicit
folder, :func:`find_run` therefore looks in the current folder's
``.pytest_cache``, in those of the folders above it (up to the repository's
root) and in those below it (a few levels), reads the newest record and names
the others.

**The texts.** The record keeps no text, by design. A prompt comes from the
suite file the run used, checked by its sha256; a response from a report's
``results.json`` when the run wrote one (unless redacted there), else from the
response cache by the case's request key; either is checked against the sha256
the run recorded, so a text shown is the one the label was given to. A response
to an unsafe prompt may be the harmful text the suite probes for: it is shown
only when asked for (:func:`pytest_xsafety.core.redaction.redacts`).

:func:`run_from_results` reads the same cases from a report's ``results.json``,
for reviewing a run made elsewhere (CI).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_xsafety.core.records import Label, ReviewSample
from pytest_xsafety.core.redaction import redacts
from pytest_xsafety.core.text import sha256_text
from pytest_xsafety.engine.cache import read_texts
from pytest_xsafety.reporting.lastrun import (
    LastCase,
    LastRun,
    LastRunError,
    read_last_run,
    record_path,
)
from pytest_xsafety.setup.reviews import DEFAULT_FILE as DEFAULT_REVIEWS
from pytest_xsafety.setup.reviews import ReviewsError, sample_dict, sample_from_dict
from pytest_xsafety.setup.suites import SuiteError, parse_suite

CACHE_FOLDER = ".pytest_cache"
DEPTH = 4  # folders below the current one searched for other runs' records
# Folders never searched: version control, virtual environments, tool caches.
SKIP = {"node_modules", "__pycache__", "site-packages", "venv", "env", "build", "dist"}


@dataclass(frozen=True)
class Found:
    """The run read, and the other runs' records found beside it (newest first)."""

    run: LastRun
    others: tuple[LastRun, ...] = ()

    def holding(self, case_id: str) -> LastRun:
        """The newest run with ``case_id``; the newest run when none has it."""
        return next((r for r in (self.run, *self.others) if case_id in r.cases), self.run)


def find_run(start: Path, cache_dir: Path | None = None) -> Found:
    """The run a review means: the one in ``cache_dir`` when given, else the newest
    record in a ``.pytest_cache`` above, in or below ``start``."""
    if cache_dir is not None:
        return Found(read_last_run(cache_dir))
    runs: list[LastRun] = []
    problems: list[str] = []
    for folder in candidate_caches(start):
        try:
            runs.append(read_last_run(folder))
        except LastRunError as exc:
            problems.append(str(exc))
    if not runs:
        if problems:
            raise LastRunError(problems[0])
        raise LastRunError(
            f"no run recorded in {start / CACHE_FOLDER} nor in a {CACHE_FOLDER} above or "
            f"below {start}: run pytest with the plugin first (pytest's cache must be on: "
            "not -p no:cacheprovider), or pass --cache-dir"
        )
    runs.sort(key=_when, reverse=True)
    return Found(runs[0], tuple(runs[1:]))


def candidate_caches(start: Path) -> list[Path]:
    """``.pytest_cache`` folders holding a run's record: ``start``'s own, those above it
    up to the repository's root, and those below it (at most :data:`DEPTH` levels)."""
    found: list[Path] = []
    here = start.resolve()
    for folder in (here, *here.parents):
        if record_path(folder / CACHE_FOLDER).is_file():
            found.append(folder / CACHE_FOLDER)
        if (folder / ".git").exists():
            break  # the repository's root: folders above belong to no run of it
    for top, dirs, _ in os.walk(here):
        depth = len(Path(top).relative_to(here).parts)
        dirs[:] = [] if depth >= DEPTH else sorted(d for d in dirs if _searched(Path(top), d))
        if top != str(here) and record_path(Path(top) / CACHE_FOLDER).is_file():
            found.append(Path(top) / CACHE_FOLDER)
    return list(dict.fromkeys(found))


def _searched(top: Path, name: str) -> bool:
    if name.startswith(".") or name in SKIP or name.endswith(".egg-info"):
        return False
    return not (top / name / "pyvenv.cfg").exists()  # a virtual environment


def _when(run: LastRun) -> str:
    """Sort key: the run's own time, else its record's modification time."""
    if run.created:
        return run.created
    from datetime import UTC, datetime

    mtime = run.path.stat().st_mtime
    return datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")


def describe(run: LastRun, start: Path) -> str:
    """``the run of 2026-12-04 20:41:10 UTC (144 cases, rootdir examples/x), recorded
    in examples/x/.pytest_cache``."""
    when = _when(run)[:19].replace("T", " ") + " UTC"
    rootdir = f", rootdir {shown_path(Path(run.rootdir), start)}" if run.rootdir else ""
    folder = shown_path(_folder(run), start)
    return f"the run of {when} ({len(run.cases)} cases{rootdir}), recorded in {folder}"


def found_lines(found: Found, start: Path) -> list[str]:
    """What the listing says about which run it read, and where the others are."""
    lines = [f"reading {describe(found.run, start)}"]
    for other in found.others:
        folder = shown_path(_folder(other), start)
        lines.append(f"  older: {describe(other, start)}; read it with --cache-dir {folder}")
    return lines


def _folder(run: LastRun) -> Path:
    """The ``.pytest_cache`` a record is in (the file itself for a results.json)."""
    depth = len(record_path(Path()).parts)
    return run.path.parents[depth - 1] if run.path.name == record_path(Path()).name else run.path


def shown_path(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` when that reads shorter, else as it is."""
    try:
        shown = os.path.relpath(path, start)
    except ValueError:  # another drive
        return str(path)
    return shown if not shown.startswith("../../..") else str(path)


# -- texts ----------------------------------------------------------------------------


@dataclass
class CaseTexts:
    """The prompt and response texts of a run's cases, looked up on demand."""

    run: LastRun
    # Texts handed over whole (a review-texts file from CI): case id -> (prompt, response).
    given: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    # More response caches to look in (``xsafety review --responses DIR``).
    response_dirs: tuple[str, ...] = ()
    _suites: dict[str, dict[str, str] | None] = field(default_factory=dict)
    _reports: dict[str, Mapping[str, Any]] | None = None
    _cached: dict[str, str] | None = None
    problems: list[str] = field(default_factory=list)  # why a text could not be found

    def prompt(self, case: LastCase) -> str | None:
        """The prompt's text from the suite file the run used, unless it changed since."""
        prompt = self.given.get(case.case_id, (None, None))[0]
        if prompt is not None:
            return prompt
        sha = case.suite_sha256
        if sha is None:
            return None
        if sha not in self._suites:
            self._suites[sha] = self._read_suite(sha)
        prompts = self._suites[sha]
        return None if prompts is None else prompts.get(case.prompt_id)

    def _read_suite(self, sha: str) -> dict[str, str] | None:
        path = self.run.suites.get(sha)
        if path is None:
            return None
        try:
            suite = parse_suite(Path(path))
        except SuiteError as exc:
            self.problems.append(f"prompts not shown: {exc}")
            return None
        if suite.sha256 != sha:
            self.problems.append(f"prompts not shown: {path} changed since the run (sha256)")
            return None
        return {p.id: p.text for p in suite.prompts}

    def response(self, case: LastCase) -> str | None:
        """The final answer's text, from a report or the response cache, only when its
        sha256 is the one the run recorded."""
        text = self.given.get(case.case_id, (None, None))[1]
        if text is not None and _matches(text, case):
            return text
        text = self._from_reports(case)
        if text is None:
            text = self._from_cache(case)
        return text

    def _from_reports(self, case: LastCase) -> str | None:
        if self._reports is None:
            self._reports = {}
            for folder in reversed(self.run.reports):  # newer reports win
                self._reports.update(_report_cases(Path(folder) / "results.json"))
        response = (self._reports.get(case.case_id) or {}).get("response") or {}
        text = response.get("text")
        return text if isinstance(text, str) and _matches(text, case) else None

    def _from_cache(self, case: LastCase) -> str | None:
        if self._cached is None:
            keys = [c.request_key for c in self.run.cases.values() if c.request_key]
            self._cached = {}
            for folder in reversed((*self.response_dirs, *self.run.cache_dirs)):
                self._cached.update(read_texts(Path(folder), keys))
        text = self._cached.get(case.request_key or "")
        return text if text is not None and _matches(text, case) else None


def _matches(text: str, case: LastCase) -> bool:
    return sha256_text(text) == case.response_sha256


def _report_cases(path: Path) -> dict[str, Mapping[str, Any]]:
    """A results.json's cases by id; nothing when it is gone or unreadable."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {str(c["case_id"]): c for c in doc["cases"] if isinstance(c, Mapping)}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def case_lines(case: LastCase, texts: CaseTexts, show_unsafe: bool = False) -> list[str]:
    """A case's prompt and response as a review shows them, indented under its id.
    A response to an unsafe prompt is withheld unless ``show_unsafe``."""
    prompt = texts.prompt(case)
    lines = [f"    prompt ({case.expected}): " + (_quoted(prompt) if prompt else "(not found)")]
    size = f"{case.chars} chars, " if case.chars is not None else ""
    if redacts(case.expected, "full" if show_unsafe else "redacted"):
        lines.append(
            f"    response: [withheld, an answer to an unsafe prompt: {size}sha256 "
            f"{case.response_sha256[:12]}; --show-unsafe prints it]"
        )
        return lines
    response = texts.response(case)
    if response is None:
        lines.append(
            f"    response: (not found: {size}sha256 {case.response_sha256[:12]}; neither a "
            "report nor the response cache holds it: rerun pytest with the cache on)"
        )
    else:
        lines.append("    response: " + _quoted(response))
    return lines


def _quoted(text: str) -> str:
    """The text whole, its later lines indented under the first (blank ones left empty)."""
    lines = text.strip().split("\n")
    return (
        '"' + "\n".join([lines[0], *(f"      {x}" if x.strip() else "" for x in lines[1:])]) + '"'
    )


# -- a report's results.json ------------------------------------------------------------


def run_from_results(path: Path, reviews: Path | None = None) -> LastRun:
    """The cases of a report's ``results.json`` (a run made elsewhere, e.g. in CI), with
    the report as their texts' source; ``reviews`` is the file a review writes to
    (default: the one the run read, relative to the current folder: the project's root)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if reviews is None:
            reviews = Path(doc.get("reviews") or DEFAULT_REVIEWS)
        suite = doc["suite"]
        cases = {
            str(c["case_id"]): _results_case(c, str(suite["sha256"]))
            for c in doc["cases"]
            if c.get("label") is not None and c.get("response")
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LastRunError(f"cannot read {path} as pytest-xsafety results: {exc}") from None
    return LastRun(
        path=path,
        reviews=reviews,
        cases=cases,
        created=str(doc.get("created") or ""),
        suites={str(suite["sha256"]): str(suite["source"])},
        reports=(str(path.parent),),
    )


def _results_case(c: Mapping[str, Any], suite_sha256: str) -> LastCase:
    response = c["response"]
    by_classifier = c.get("classifier_label")
    return LastCase(
        case_id=str(c["case_id"]),
        expected=str(c["expected"]),
        label=Label.parse(c["label"]),
        label_source=str(c.get("label_source") or "classifier"),
        uncertain=bool(c.get("uncertain")),
        response_sha256=str(response["sha256"]),
        chars=response.get("chars"),
        classifier=str(c["classifier"]),
        review=c.get("review"),
        classifier_label=Label.parse(by_classifier) if by_classifier else None,
        prompt_id=str(c["prompt_id"]),
        suite_sha256=suite_sha256,
        request_key=c.get("request_key"),
        stratum=c.get("stratum"),
        run=str(c.get("run") or ""),
    )


# -- the review-texts file ----------------------------------------------------------------

TEXTS_SCHEMA = 1


def write_review_texts(
    path: Path, samples: Mapping[str, ReviewSample], cases: Mapping[str, LastCase], texts: CaseTexts
) -> int:
    """Write the prompt and response of every sampled case whose texts are found, and the
    samples themselves, to ``path`` (JSON, readable by its owner only: it may hold the
    harmful answers the suite probes for, for the reviewer alone). Returns how many
    cases' responses it holds."""
    entries: dict[str, dict[str, str | None]] = {}
    for sample in samples.values():
        for c in sample.cases:
            case = cases.get(c.case_id)
            if case is None:
                continue
            response = texts.response(case)
            entries[c.case_id] = {
                "prompt": texts.prompt(case),
                "response": response,
                "response_sha256": case.response_sha256,
            }
    doc = {
        "schema": TEXTS_SCHEMA,
        "note": "Prompts and responses of the review sample, for the reviewer only: it may "
        "hold harmful text. Keep it out of pull-request comments, logs and the repository.",
        "samples": {group: sample_dict(s) for group, s in sorted(samples.items())},
        "texts": entries,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that was there keeps its mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return sum(1 for e in entries.values() if e["response"] is not None)


def read_review_texts(
    path: Path,
) -> tuple[dict[str, ReviewSample], dict[str, tuple[str | None, str | None]]]:
    """The samples and texts a review-texts file holds; LastRunError names what is wrong."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("schema") != TEXTS_SCHEMA:
            raise ValueError(f"schema {doc.get('schema')!r}, this version reads {TEXTS_SCHEMA}")
        samples = {
            str(group): sample_from_dict(str(group), entry, f"{path}: samples.{group}")
            for group, entry in doc["samples"].items()
        }
        texts = {
            str(cid): (_text_or_none(e.get("prompt")), _text_or_none(e.get("response")))
            for cid, e in doc["texts"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ReviewsError) as exc:
        raise LastRunError(f"{path}: not a review-texts file ({exc})") from None
    return samples, texts


def _text_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"a text must be a string or null, not {type(value).__name__}")
