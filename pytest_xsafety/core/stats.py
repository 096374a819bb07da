"""Statistics stage: Wilson 95% intervals for rates, the exact McNemar test for pairs.

Both come from statsmodels, imported on first use (about a second), so a run
that asks for neither an interval gate nor a report never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A two-sided 95% interval for a proportion, as fractions in [0, 1]."""

    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def wilson(hits: int, total: int) -> Interval | None:
    """The Wilson score interval for ``hits`` of ``total``; ``None`` when ``total`` is 0.

    Wilson rather than the normal approximation: it stays inside [0, 1] and is
    not degenerate at 0 or n hits, which are common here (0 of 10 refused).
    """
    if total <= 0:
        return None
    if not 0 <= hits <= total:
        raise ValueError(f"hits must be in [0, {total}], got {hits}")
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(hits, total, alpha=1 - CONFIDENCE, method="wilson")
    # Rounding at the edges (0.9999999999999999 for n of n) must not leave the rate outside.
    rate = hits / total
    return Interval(max(0.0, min(float(low), rate)), min(1.0, max(float(high), rate)))


@dataclass(frozen=True)
class PairedTest:
    """McNemar's exact test on paired binary outcomes (before -> after).

    ``gained``: pairs that were 0 and are 1 now; ``lost``: 1 before, 0 now (the
    discordant pairs, the only ones the test looks at). ``p_value`` is the
    two-sided exact binomial p-value; 1.0 when nothing changed.
    """

    pairs: int
    gained: int
    lost: int
    p_value: float


def mcnemar_exact(pairs: int, gained: int, lost: int) -> PairedTest:
    """The exact (binomial) McNemar test for ``gained`` vs ``lost`` discordant pairs."""
    if gained < 0 or lost < 0 or gained + lost > pairs:
        raise ValueError(f"discordant pairs {gained}+{lost} do not fit in {pairs} pairs")
    if gained + lost == 0:
        return PairedTest(pairs, 0, 0, 1.0)
    from statsmodels.stats.contingency_tables import mcnemar

    # Only the off-diagonal cells enter the exact test; the diagonal is not needed.
    table: list[list[int]] = [[0, gained], [lost, 0]]
    result: Any = mcnemar(table, exact=True)
    return PairedTest(pairs, gained, lost, min(1.0, float(result.pvalue)))
