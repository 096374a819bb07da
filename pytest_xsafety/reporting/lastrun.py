"""The last run's cases, kept in pytest's cache for ``xsafety review``.

After each run the controller stores, under the cache key :data:`KEY` (pytest
writes it to ``.pytest_cache/v/xsafety/last-run``, as stepwise keeps its state),
every case's label, where it came from, the uncertain flag and its final answer's
sha256 and length: what a review pins a label to. No response or prompt text is
kept: the record says where the texts are instead, so that a review can show them
(:mod:`pytest_xsafety.reporting.review_cases`): the suite file (path and sha256),
the response cache folder and each case's request key, and the report folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_xsafety.core.records import CaseRecord, Label
from pytest_xsafety.core.text import is_sha256

KEY = "xsafety/last-run"
SCHEMA = 1


@dataclass(frozen=True)
class LastCase:
    """One case of the last run, as a review needs it."""

    case_id: str
    expected: str
    label: Label
    label_source: str
    uncertain: bool
    response_sha256: str
    chars: int | None
    classifier: str
    review: str | None = None
    classifier_label: Label | None = None
    prompt_id: str = ""
    suite_sha256: str | None = None  # which suite file holds the prompt's text
    request_key: str | None = None  # the final answer's key in the response cache
    stratum: str | None = None  # the review-sample stratum the classifier's label gave it
    run: str = ""  # the ``created`` of the run that recorded it (runs merge their cases)

    @property
    def classifier_said(self) -> Label:
        """The classifier's own label (a review may have replaced ``label``)."""
        return self.classifier_label if self.classifier_label is not None else self.label


@dataclass(frozen=True)
class RunSources:
    """Where one run's texts are: nothing here is text itself."""

    created: str = ""  # ISO 8601, UTC
    rootdir: str = ""
    suite: str = ""  # the suite file's absolute path
    suite_sha256: str = ""
    cache_dir: str | None = None  # None under --xsafety-no-cache
    report: str | None = None  # the --xsafety-report folder, when one was written
    keys: Mapping[str, str] = field(default_factory=dict)  # case id -> request key


def last_run(
    records: Sequence[CaseRecord],
    reviews: Path,
    earlier: Any = None,
    sources: RunSources | None = None,
) -> dict[str, Any]:
    """The cache value: the cases that got a label and an answer, the reviews file and
    where the texts are; cases of the ``earlier`` value that did not run again are kept
    (with the suite, cache and report folders they name)."""
    src = sources or RunSources()
    same = isinstance(earlier, dict) and earlier.get("schema") == SCHEMA
    old: Mapping[str, Any] = earlier if same else {}
    cases: dict[str, Any] = dict(old.get("cases") or {})
    for r in records:
        if r.label is None or r.response is None:
            continue
        cases[r.case_id] = {
            "expected": r.expected,
            "label": r.label.value,
            "label_source": r.label_source or "classifier",
            "uncertain": bool(r.uncertain),
            "response_sha256": r.response.sha256,
            "chars": r.response.chars,
            "classifier": r.classifier,
            "review": r.review,
            "classifier_label": None if r.classifier_label is None else r.classifier_label.value,
            "prompt_id": r.prompt_id,
            "suite_sha256": src.suite_sha256 or None,
            "request_key": src.keys.get(r.case_id),
            "stratum": r.stratum,
            "run": src.created,
        }
    suites = dict(old.get("suites") or {})
    if src.suite_sha256:
        suites[src.suite_sha256] = src.suite
    return {
        "schema": SCHEMA,
        "reviews": str(reviews),
        "created": src.created,
        "rootdir": src.rootdir,
        "suites": suites,
        # Newest first: a case merged from an earlier run may be in an older folder.
        "cache_dirs": _newest_first(src.cache_dir, old.get("cache_dirs")),
        "reports": _newest_first(src.report, old.get("reports")),
        "cases": cases,
    }


def _newest_first(new: str | None, old: Any) -> list[str]:
    earlier = [str(p) for p in old] if isinstance(old, list) else []
    return list(dict.fromkeys([*([new] if new else []), *earlier]))[:5]


class LastRunError(ValueError):
    """No usable record of a last run."""


@dataclass(frozen=True)
class LastRun:
    """A run's record as read back: its cases and where their texts are."""

    path: Path  # the record's file
    reviews: Path
    cases: dict[str, LastCase]
    created: str = ""
    rootdir: str = ""
    suites: Mapping[str, str] = field(default_factory=dict)  # sha256 -> path
    cache_dirs: tuple[str, ...] = ()
    reports: tuple[str, ...] = ()


def record_path(cache_dir: Path) -> Path:
    """Where a ``.pytest_cache`` folder keeps the record."""
    return cache_dir / "v" / KEY


def read_last_run(cache_dir: Path) -> LastRun:
    """The record the last run in ``cache_dir`` (a ``.pytest_cache``) kept."""
    path = record_path(cache_dir)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LastRunError(
            f"no run recorded in {path}: run pytest with the plugin here first (pytest's "
            "cache must be on: not -p no:cacheprovider), or pass --cache-dir"
        ) from None
    except (OSError, ValueError) as exc:
        raise LastRunError(f"{path}: cannot be read ({exc}); rerun pytest") from None
    if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA:
        raise LastRunError(f"{path}: not a record this version reads; rerun pytest")
    try:
        cases = {cid: _case(cid, c) for cid, c in doc["cases"].items()}
        return LastRun(
            path=path,
            reviews=Path(doc["reviews"]),
            cases=cases,
            created=str(doc.get("created") or ""),
            rootdir=str(doc.get("rootdir") or ""),
            suites={str(k): str(v) for k, v in (doc.get("suites") or {}).items()},
            cache_dirs=tuple(str(p) for p in doc.get("cache_dirs") or ()),
            reports=tuple(str(p) for p in doc.get("reports") or ()),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise LastRunError(f"{path}: malformed ({why}); rerun pytest") from None


def _case(case_id: str, c: Mapping[str, Any]) -> LastCase:
    by_classifier = c.get("classifier_label")
    sha = c["response_sha256"]
    if not is_sha256(sha):
        raise ValueError(f"case {case_id}: response_sha256 {sha!r} is not a sha256")
    return LastCase(
        case_id=case_id,
        expected=str(c["expected"]),
        label=Label.parse(c["label"]),
        label_source=str(c["label_source"]),
        uncertain=bool(c["uncertain"]),
        response_sha256=sha,
        chars=c.get("chars"),
        classifier=str(c["classifier"]),
        review=c.get("review"),
        classifier_label=Label.parse(by_classifier) if by_classifier else None,
        # Records from before these fields: the id's last part is the prompt id.
        prompt_id=str(c.get("prompt_id") or case_id.rsplit("/", 1)[-1]),
        suite_sha256=c.get("suite_sha256"),
        request_key=c.get("request_key"),
        stratum=c.get("stratum"),
        run=str(c.get("run") or ""),
    )
