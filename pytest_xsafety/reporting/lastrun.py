"""The last run's cases, kept in pytest's cache for ``xsafety review``.

After each run the controller stores, under the cache key :data:`KEY` (pytest
writes it to ``.pytest_cache/v/xsafety/last-run``, as stepwise keeps its state),
every case's label, where it came from, the uncertain flag and its final answer's
sha256 and length: what a review pins a label to. No response text is kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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

    @property
    def classifier_said(self) -> Label:
        """The classifier's own label (a review may have replaced ``label``)."""
        return self.classifier_label if self.classifier_label is not None else self.label


def last_run(records: Sequence[CaseRecord], reviews: Path, earlier: Any = None) -> dict[str, Any]:
    """The cache value: the cases that got a label and an answer, and the reviews file;
    cases of the ``earlier`` value that did not run again are kept."""
    same = isinstance(earlier, dict) and earlier.get("schema") == SCHEMA
    cases: dict[str, Any] = dict(earlier.get("cases") or {}) if same else {}
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
        }
    return {"schema": SCHEMA, "reviews": str(reviews), "cases": cases}


class LastRunError(ValueError):
    """No usable record of a last run."""


def read_last_run(cache_dir: Path) -> tuple[Path, dict[str, LastCase]]:
    """The reviews file and cases the last run in ``cache_dir`` (a ``.pytest_cache``) kept."""
    path = cache_dir / "v" / KEY
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
        return Path(doc["reviews"]), cases
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
    )
