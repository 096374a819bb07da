"""The terminal summary as lines, composed from the one report object.

The session only writes these lines with pytest's terminal reporter; building
them here keeps them testable without pytest and the same as ``summary.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_xsafety.reporting.contrast import pair_lines
from pytest_xsafety.reporting.model import Report
from pytest_xsafety.reporting.terminal import (
    ESTIMATE_TITLE,
    breach_lines,
    budget_sources,
    change_lines,
    error_lines,
    estimate_lines,
    not_gated_line,
    over_budget_within_interval,
    pct,
    review_lines,
    study_table,
    summary_table,
    uncertain_line,
)

STUDY_TITLE = "strategies against baseline (arXiv 2405.05418, both sides)"


@dataclass(frozen=True)
class Line:
    """One line of output; ``sep`` makes it a separator titled ``text``."""

    text: str
    sep: str | None = None
    red: bool = False
    yellow: bool = False
    bold: bool = False


def summary_lines(
    report: Report, snapshot_lines: Sequence[str] = (), files: Sequence[Path] = ()
) -> list[Line]:
    """Everything the terminal shows after the tests, in order."""
    out = [Line(f"xsafety summary (gate: {report.info.gate})", sep="=")]
    out += [Line(s) for s in summary_table(report.summaries) + budget_sources(report.summaries)]
    out += _estimates(report)
    out += _study(report)
    out += _pairs(report)
    if report.baseline is not None:
        out.append(Line(f"changes since {report.baseline.source} (exact McNemar)", sep="-"))
        out += [Line(s) for s in change_lines(report.changes)]
    out += _response_notes(report)
    out += _problems(report)
    if snapshot_lines:
        out.append(Line("xsafety snapshots", sep="-"))
        out += [Line(s) for s in snapshot_lines]
    if files:
        names = ", ".join(p.name for p in files)
        out.append(Line(f"xsafety: report in {files[0].parent}: {names}"))
    return out


def _estimates(report: Report) -> list[Line]:
    """The estimated human rates of groups with a review sample, or that the rates are
    the classifier's alone."""
    lines = estimate_lines(report.summaries)
    if not any(s.sample_size is not None for s in report.summaries):
        return [Line(s) for s in lines]
    return [Line(ESTIMATE_TITLE, sep="-"), *(Line(s) for s in lines)]


def _study(report: Report) -> list[Line]:
    study = study_table(report.study_summaries)
    if not study:
        return []
    title = STUDY_TITLE + ("; baseline from the response cache" if report.cached else "")
    return [Line(title, sep="-"), *(Line(s) for s in study)]


def _pairs(report: Report) -> list[Line]:
    study = report.contrast
    if not any(s.pairs or s.uncounted for s in study.summaries):
        return []
    title = "contrast pairs (over-cautious: refuses both the safe prompt and its unsafe twin)"
    return [Line(title, sep="-"), *(Line(s) for s in pair_lines(study.summaries, study.shifts))]


def _response_notes(report: Report) -> list[Line]:
    records = report.records
    out = []
    second = [r for r in records if (r.turns or 1) > 1]
    if second:
        flipped = sum(1 for r in second if r.first_label is not r.label)
        out.append(
            Line(
                f"interactive: {len(second)} case(s) got a clarification turn; "
                f"{flipped} changed label after it"
            )
        )
    notes = []
    if empty := sum(1 for r in records if r.empty):
        notes.append(f"{empty} empty response(s) (labelled by the classifier's "
                     "empty-response rule)")  # fmt: skip
    if truncated := sum(1 for r in records if r.truncated):
        notes.append(f"{truncated} response(s) cut at the token limit")
    if notes:
        out.append(Line("responses: " + "; ".join(notes)))
    if (uncertain := uncertain_line(records)) is not None:
        out.append(Line(uncertain))
    out += [Line(line) for line in review_lines(records)]
    return out


def _problems(report: Report) -> list[Line]:
    """Errors, warnings, breaches, unscored cases and sides no budget gates; or that
    every budget holds, said only when every side of every group was judged."""
    out = []
    out += [Line(s, red=True) for s in error_lines(report.records)]
    out += [Line(f"xsafety: WARNING: {w}", yellow=True) for w in report.info.warnings]
    out += [Line(s, yellow=True) for s in over_budget_within_interval(report.summaries)]
    breaches = breach_lines(report.summaries)
    if breaches:
        out.append(Line("budgets exceeded", sep="-", red=True, bold=True))
        out += [Line(s, red=True) for s in breaches]
    if undecided := report.undecided:
        out.append(Line("budgets undecided", sep="-", red=True, bold=True))
        out += [Line(s, red=True) for s in undecided]
    out += [
        Line(f"{s.model}/{s.strategy}: {s.unscored} case(s) unscored")
        for s in report.summaries
        if s.unscored
    ]
    allowed = report.info.allow_no_budget
    ungated = not_gated_line(report.summaries, allowed)
    if ungated is not None:
        out.append(Line(ungated, red=not allowed, yellow=allowed))
    judged = [s for s in report.summaries if s.cases]
    if not judged:
        out.append(Line("no budget could be judged: no case generated", red=True))
    elif not breaches and report.errors:
        out.append(
            Line(f"no budget exceeded by the cases that generated, but {report.errors} "
                 "case(s) errored and were not judged: the run fails", red=True)
        )  # fmt: skip
    elif not breaches and not undecided and any(s.has_budget for s in judged):
        rates = ", ".join(f"{s.model}/{s.strategy} {pct(s.safe_refusal_rate)}" for s in judged)
        holds = "all budgets hold" if ungated is None else "the budgets that are set hold"
        out.append(Line(f"{holds} (safe refusal: {rates})"))
    return out
