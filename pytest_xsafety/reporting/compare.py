"""Comparison with a previous run's ``results.json`` (``--xsafety-baseline``).

Cases pair by model, strategy and prompt id. Each case is marked ``same``
(label unchanged), ``flipped`` (label changed) or ``new`` (not in the baseline);
a case that errored in either run is not compared. Per model x strategy and per
side, McNemar's exact test on the paired cases says whether the rate moved more
than label noise would: safe side, refused or not; unsafe side, complied or not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_xsafety.core.choices import Metric
from pytest_xsafety.core.records import CaseRecord, Expectation, Label
from pytest_xsafety.core.stats import PairedTest, mcnemar_exact
from pytest_xsafety.core.text import UsageError
from pytest_xsafety.engine.budgets import counts_against, metric_for

SCHEMA_VERSION = 1
SCHEMA_ID = f"urn:pytest-xsafety:results:v{SCHEMA_VERSION}"


class ResultsError(UsageError):
    """A results.json that cannot be read; the message names it and the fix."""


class BaselineError(ResultsError):
    """A baseline file that cannot be read; the message names it and the fix."""


def read_results(path: Path, where: str) -> dict[str, Any]:
    """The ``results.json`` document at ``path``, one this version reads (schema
    version 1; a ``schema`` other than this version's is refused, its absence is not);
    else a one-line :class:`ResultsError` starting with ``where``."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{where}: cannot read it as JSON: {exc}") from None
    except RecursionError:  # json recurses per nesting level
        raise ResultsError(f"{where}: cannot read it as JSON: nested too deeply") from None
    except ValueError as exc:  # not JSON, or an integer of more than 4,300 digits
        reason = str(exc).split(";")[0]
        raise ResultsError(f"{where}: cannot read it as JSON: {reason}") from None
    fix = "pass the results.json an --xsafety-report run of this version wrote"
    if not isinstance(data, dict):
        raise ResultsError(f"{where}: not a pytest-xsafety results.json (not a JSON object); {fix}")
    schema, version = data.get("schema", SCHEMA_ID), data.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool) or schema != SCHEMA_ID:
        found = f"schema {_short(schema)}, " if schema != SCHEMA_ID else ""
        raise ResultsError(
            f"{where}: not a pytest-xsafety results.json of schema version {SCHEMA_VERSION} "
            f"(found {found}schema_version {_short(version)}); {fix}"
        )
    return data


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


Key = tuple[str, str, str]  # model, strategy, prompt id


@dataclass(frozen=True)
class Baseline:
    source: str
    labels: Mapping[Key, Label | None]  # None: that case errored in the baseline
    suite_sha256: str | None
    classifier: str | None
    created: str | None


def load_baseline(path: Path) -> Baseline:
    where = f"--xsafety-baseline {path}"
    try:
        data = read_results(path, where)
    except ResultsError as exc:
        raise BaselineError(str(exc)) from None
    labels: dict[Key, Label | None] = {}
    try:
        for case in data["cases"]:
            key = (str(case["model"]), str(case["strategy"]), str(case["prompt_id"]))
            label = case.get("label")
            labels[key] = None if label is None else Label.parse(str(label))
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f"{where}: malformed case record ({exc})") from None
    suite = data.get("suite") or {}
    if not isinstance(suite, dict):
        raise BaselineError(f"{where}: 'suite' is {suite!r}, not an object: not a results.json")
    texts = {"suite.sha256": suite.get("sha256"), "classifier": data.get("classifier"),
             "created": data.get("created")}  # fmt: skip
    for name, value in texts.items():
        if value is not None and not isinstance(value, str):
            raise BaselineError(f"{where}: {name!r} is {value!r}, not text: not a results.json")
    return Baseline(
        source=str(path),
        labels=labels,
        suite_sha256=suite.get("sha256"),
        classifier=data.get("classifier"),
        created=data.get("created"),
    )


def mark(records: Sequence[CaseRecord], baseline: Baseline) -> list[CaseRecord]:
    """Each record with its baseline status and the baseline's label."""
    out = []
    for r in records:
        if r.key not in baseline.labels:
            out.append(r.with_baseline("new", None))
            continue
        before = baseline.labels[r.key]
        old = None if before is None else before.value
        if before is None or r.label is None:
            out.append(r.with_baseline(None, old))  # an error on either side: not compared
        else:
            out.append(r.with_baseline("same" if before is r.label else "flipped", old))
    return out


@dataclass(frozen=True)
class SideChange:
    """One side (safe refusal or unsafe compliance) of one group over the paired cases."""

    metric: Metric
    before: int  # hits in the baseline
    after: int  # hits now
    test: PairedTest

    @property
    def pairs(self) -> int:
        return self.test.pairs


@dataclass(frozen=True)
class GroupChange:
    model: str
    strategy: str
    compared: int
    flipped: int
    new: int
    sides: tuple[SideChange, ...]

    def side(self, metric: Metric) -> SideChange | None:
        return next((s for s in self.sides if s.metric == metric), None)


def compare(marked: Sequence[CaseRecord], baseline: Baseline) -> list[GroupChange]:
    """Per model x strategy (first-seen order): flips and the paired test per side."""
    groups: dict[tuple[str, str], list[CaseRecord]] = {}
    for r in marked:
        groups.setdefault((r.model, r.strategy), []).append(r)
    changes = []
    for (model, strategy), rows in groups.items():
        sides = []
        expectations: tuple[Expectation, ...] = ("safe", "unsafe")
        for expected in expectations:
            metric = metric_for(expected)
            pairs = [
                (before, r.label)
                for r in rows
                if r.expected == expected
                and r.label not in (None, Label.UNSCORED)
                and (before := baseline.labels.get(r.key)) not in (None, Label.UNSCORED)
            ]
            was = [before is not None and counts_against(before, metric) for before, _ in pairs]
            now = [label is not None and counts_against(label, metric) for _, label in pairs]
            gained = sum(1 for a, b in zip(was, now, strict=True) if b and not a)
            lost = sum(1 for a, b in zip(was, now, strict=True) if a and not b)
            if pairs:
                test = mcnemar_exact(len(pairs), gained, lost)
                sides.append(SideChange(metric, sum(was), sum(now), test))
        changes.append(
            GroupChange(
                model,
                strategy,
                compared=sum(1 for r in rows if r.baseline in ("same", "flipped")),
                flipped=sum(1 for r in rows if r.baseline == "flipped"),
                new=sum(1 for r in rows if r.baseline == "new"),
                sides=tuple(sides),
            )
        )
    return changes
