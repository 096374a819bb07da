"""Contrast pairs as people read them: the terminal lines and the tables' cells.

Pure functions over :mod:`pytest_xsafety.engine.contrast` results; the terminal
summary and ``summary.md`` (its "Contrast pairs" section) render them, and
``plots`` draws the outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_xsafety.engine.contrast import PAIR_OUTCOMES, PairShift, PairSummary, TriggerRate
from pytest_xsafety.reporting.terminal import pct


def _counts(s: PairSummary) -> str:
    counts = ", ".join(f"{s.count(o)} {o}" for o in PAIR_OUTCOMES)
    return counts + (f", {s.uncounted} not counted" if s.uncounted else "")


def shift_text(shift: PairShift) -> str:
    """``calibrated 4 -> 10 of 12 (+7 -1), p = 0.0703; 7 over-cautious freed, 1 made
    over-compliant``: the pairs counted under both strategies."""
    t = shift.test
    return (
        f"calibrated {shift.before('calibrated')} -> {shift.after('calibrated')} of {t.pairs} "
        f"(+{t.gained} -{t.lost}), p = {t.p_value:.3g}; {shift.freed} over-cautious freed, "
        f"{shift.made_over_compliant} made over-compliant"
    )


def _shift_of(shifts: Sequence[PairShift]) -> dict[tuple[str, str], PairShift]:
    return {(s.model, s.strategy): s for s in shifts}


def pair_lines(summaries: Sequence[PairSummary], shifts: Sequence[PairShift] = ()) -> list[str]:
    """One terminal line per model x strategy; against baseline where it ran."""
    by_group = _shift_of(shifts)
    lines = []
    for s in summaries:
        line = f"{s.model}/{s.strategy}: {s.pairs} pairs: {_counts(s)}"
        shift = by_group.get((s.model, s.strategy))
        if shift is not None:
            line += f"; vs {shift.baseline}: {shift_text(shift)}"
        lines.append(line)
    return lines


def outcome_cells(summaries: Sequence[PairSummary]) -> list[tuple[str, ...]]:
    """The outcome table, header first: count and share of each outcome per group."""
    rows: list[tuple[str, ...]] = [("model", "strategy", "pairs", *PAIR_OUTCOMES, "not counted")]
    for s in summaries:
        shares = (f"{s.count(o)} ({pct(s.share(o))})" for o in PAIR_OUTCOMES)
        rows.append((s.model, s.strategy, str(s.pairs), *shares, str(s.uncounted)))
    return rows


def shift_cells(shifts: Sequence[PairShift]) -> list[tuple[str, ...]]:
    """The study on pairs, header first; ``moves`` lists the non-zero transitions."""
    rows: list[tuple[str, ...]] = [
        ("model", "strategy", "pairs", "calibrated before → after", "McNemar p",
         "over-cautious freed", "made over-compliant", "moves"),
    ]  # fmt: skip
    for s in shifts:
        t = s.test
        moves = ", ".join(
            f"{b} → {a} {s.moved(b, a)}"
            for b in PAIR_OUTCOMES
            for a in PAIR_OUTCOMES
            if a != b and s.moved(b, a)
        )
        rows.append(
            (
                s.model,
                s.strategy,
                str(t.pairs),
                f"{s.before('calibrated')} → {s.after('calibrated')} (+{t.gained} -{t.lost})",
                f"{t.p_value:.3g}",
                str(s.freed),
                str(s.made_over_compliant),
                moves or "none",
            )
        )
    return rows


def trigger_cells(triggers: Sequence[TriggerRate]) -> list[tuple[str, ...]]:
    """Trigger words (or note categories), header first, in the order given."""
    title = "focus word" if not triggers or triggers[0].kind == "focus" else "note"
    rows: list[tuple[str, ...]] = [("model", "strategy", title, "safe prompts refused")]
    for t in triggers:
        rows.append((t.model, t.strategy, t.key, f"{t.refused}/{t.total} ({pct(t.rate)})"))
    return rows
