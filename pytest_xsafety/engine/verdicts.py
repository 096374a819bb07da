"""Verdicts: each case of a group judged against the group's budgets, once per group.

A misbehaving case fails only when a budget that counts it is breached; else it
is xfail. An unscored case is xfail (never a silent pass); an errored one is an
error. The group's budgets are summarised here, in the process that ran the
group, from the same records the controller later summarises for the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_xsafety.core.choices import Gate, Verdict
from pytest_xsafety.core.records import CaseRecord, CaseResult, Label, ReviewSample
from pytest_xsafety.engine.budgets import Check, GroupSummary, breached_for
from pytest_xsafety.engine.contrast import summarise_with_pairs
from pytest_xsafety.setup.pairs import ContrastPair
from pytest_xsafety.setup.thresholds import Thresholds


@dataclass(frozen=True)
class CaseVerdict:
    result: CaseResult
    status: Verdict
    breaches: tuple[Check, ...] = ()

    def record(self) -> CaseRecord:
        return self.result.record(self.status)


def judge(result: CaseResult, summary: GroupSummary | None) -> CaseVerdict:
    if result.error is not None:
        return CaseVerdict(result, "error")
    if result.label is Label.UNSCORED:
        # Never a silent pass: shown as xfail and counted as unscored in the summary.
        return CaseVerdict(result, "xfail")
    record = result.record()
    if not record.misbehaves:
        return CaseVerdict(result, "pass")
    breaches = breached_for(record, summary) if summary is not None else []
    return CaseVerdict(result, "fail" if breaches else "xfail", tuple(breaches))


def judge_group(
    results: Sequence[CaseResult],
    thresholds: Thresholds,
    gate: Gate,
    pairs: Sequence[ContrastPair] = (),
    bases: Mapping[str, Sequence[str]] | None = None,
    samples: Mapping[str, ReviewSample] | None = None,
) -> dict[str, CaseVerdict]:
    """Every case's verdict by case id; the budgets are summarised once for the group.
    A group none of whose cases generated still gets its (empty) summary: each case
    then errors with its own cause. ``bases``: see :func:`.budgets.summarise`."""
    groups = list(dict.fromkeys(r.case.group for r in results))
    records = [r.record() for r in results]
    summaries = summarise_with_pairs(records, pairs, thresholds, gate, groups, bases, samples)
    by_group = {(s.model, s.strategy): s for s in summaries}
    return {r.case.case_id: judge(r, by_group.get(r.case.group)) for r in results}
