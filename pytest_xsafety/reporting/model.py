"""The report model, built once at the end of a run on the controller.

Every rendering reads this one object: the terminal summary, ``summary.md``,
``results.json``, the CSV tables and the plots. It is built from the case
records the controller received; nothing here generates or classifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from pytest_xsafety.core.choices import Gate
from pytest_xsafety.core.records import CaseRecord, Prompt, ReviewSample, RunInfo
from pytest_xsafety.engine.budgets import GroupSummary, summarise
from pytest_xsafety.engine.contrast import (
    ContrastStudy,
    contrast_study,
    summarise_with_pairs,
    with_pair_outcomes,
)
from pytest_xsafety.reporting.compare import Baseline, GroupChange, compare, mark
from pytest_xsafety.reporting.terminal import breach_lines, not_gated_groups, undecided_lines
from pytest_xsafety.setup.pairs import contrast_pairs
from pytest_xsafety.setup.thresholds import Thresholds


@dataclass(frozen=True)
class Report:
    """Everything the files show. ``records`` carry baseline marks when a baseline is set."""

    info: RunInfo
    records: tuple[CaseRecord, ...]
    summaries: tuple[GroupSummary, ...]
    baseline: Baseline | None = None
    changes: tuple[GroupChange, ...] = field(default_factory=tuple)
    # The baseline strategy's rates from the response cache, when it did not run.
    cached: tuple[GroupSummary, ...] = field(default_factory=tuple)
    # Contrast pairs: outcomes, shifts, trigger words; the run's prompts by id (their text).
    contrast: ContrastStudy = field(default_factory=ContrastStudy)
    prompts: tuple[Prompt, ...] = ()

    @property
    def study_summaries(self) -> tuple[GroupSummary, ...]:
        """What the strategies-against-baseline study compares (cached baseline first)."""
        return self.cached + self.summaries

    @property
    def breaches(self) -> list[str]:
        return breach_lines(self.summaries)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.records if r.label is None)

    @property
    def undecided(self) -> list[str]:
        """The budgets that could not be decided: a side whose every case is unscored,
        and under gate estimate the ones the estimated rates cannot decide yet."""
        return undecided_lines(self.summaries)

    @property
    def not_gated(self) -> list[str]:
        """Per model x strategy with a side no budget gates: the group and those rates."""
        return not_gated_groups(self.summaries)

    @property
    def fails_ungated(self) -> bool:
        """A side has no budget and --xsafety-allow-no-budget was not given: the run fails
        (a gate with nothing to gate must not pass)."""
        return bool(self.not_gated) and not self.info.allow_no_budget

    @property
    def gate_failures(self) -> list[str]:
        """Why the run fails where no case fails: undecided budgets, ungated sides."""
        ungated = [f"not gated: no budget for {g}" for g in self.not_gated]
        return self.undecided + (ungated if self.fails_ungated else [])

    @property
    def passed(self) -> bool:
        return (
            not self.breaches and not self.errors and not self.fails_ungated and not self.undecided
        )

    def snapshot_count(self, status: str) -> int:
        return sum(1 for r in self.records if r.snapshot == status)

    @property
    def baseline_flips(self) -> int | None:
        if self.baseline is None:
            return None
        return sum(1 for r in self.records if r.baseline == "flipped")

    def errors_in(self, model: str, strategy: str) -> int:
        group = (model, strategy)
        return sum(1 for r in self.records if (r.model, r.strategy) == group and r.label is None)


def build_report(
    info: RunInfo,
    records: Sequence[CaseRecord],
    thresholds: Thresholds,
    baseline: Baseline | None = None,
    prompts: Sequence[Prompt] = (),
    bases: Mapping[str, Sequence[str]] | None = None,
    samples: Mapping[str, ReviewSample] | None = None,
) -> Report:
    """Summarise the records against the budgets (once), compare with the baseline run,
    and study the contrast pairs of the run's ``prompts`` (each record gets its pair).
    ``bases``: per model, the models it extends (see :func:`.budgets.summarise`)."""
    marked = mark(records, baseline) if baseline is not None else list(records)
    changes = compare(marked, baseline) if baseline is not None else []
    # Every group that ran, including one whose cases all errored.
    groups = list(dict.fromkeys(r.group for r in records))
    summaries = summarise_with_pairs(
        records, contrast_pairs(prompts), thresholds, info.gate, groups, bases, samples
    )
    base = cached_baseline_records(records)
    cached = tuple(summarise(base, thresholds, info.gate, bases=bases))
    study = contrast_study(records, prompts, base)
    marked = with_pair_outcomes(marked, prompts, study)
    if samples:
        marked = [
            replace(r, sampled=r.case_id in samples[f"{r.model}/{r.strategy}"].ids)
            if f"{r.model}/{r.strategy}" in samples
            else r
            for r in marked
        ]
    return Report(
        info, tuple(marked), tuple(summaries), baseline, tuple(changes), cached, study,
        tuple(prompts),
    )  # fmt: skip


def cached_baselines(
    records: Sequence[CaseRecord],
    thresholds: Thresholds,
    gate: Gate,
    bases: Mapping[str, Sequence[str]] | None = None,
) -> tuple[GroupSummary, ...]:
    """``baseline`` summaries of models whose every case carries the label its prompt
    got under ``baseline`` in the response cache (labelled where the case ran)."""
    return tuple(summarise(cached_baseline_records(records), thresholds, gate, bases=bases))


def cached_baseline_records(records: Sequence[CaseRecord]) -> list[CaseRecord]:
    """``baseline`` records, from the cached labels the cases carry, of models whose
    every case carries one (none when ``baseline`` ran)."""
    if any(r.strategy == "baseline" for r in records):
        return []
    out: list[CaseRecord] = []
    for model in dict.fromkeys(r.model for r in records):
        mine = [r for r in records if r.model == model]
        if any(r.cached_baseline is None for r in mine):
            continue
        prompts = {r.prompt_id: r for r in mine}  # each prompt once, in run order
        out += [
            CaseRecord(model, "baseline", r.prompt_id, r.prompt_type, r.expected, r.classifier,
                       "", label=r.cached_baseline)
            for r in prompts.values()
        ]  # fmt: skip
    return out
