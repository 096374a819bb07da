"""Wilson intervals and the exact McNemar test against known values and textbook formulas."""

from __future__ import annotations

import math

import pytest

from pytest_xsafety.core.records import CaseRecord, Label
from pytest_xsafety.core.stats import mcnemar_exact, wilson
from pytest_xsafety.engine.budgets import summarise
from pytest_xsafety.reporting.terminal import describe_check, over_budget_within_interval
from pytest_xsafety.setup.thresholds import parse_thresholds

Z = 1.959963984540054  # the 97.5% quantile of the standard normal


def textbook_wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson (1927): (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    p = k / n
    centre = p + Z * Z / (2 * n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (centre - half) / (1 + Z * Z / n), (centre + half) / (1 + Z * Z / n)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (1, 18, 0.0099, 0.2576),
        (4, 250, 0.0062, 0.0404),
    ],
)
def test_wilson_known_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson(k, n)
    assert got is not None
    assert (got.low, got.high) == pytest.approx((low, high), abs=5e-5)
    assert (got.low, got.high) == pytest.approx(textbook_wilson(k, n), abs=1e-12)


def test_wilson_of_nothing_and_bad_counts() -> None:
    assert wilson(0, 0) is None
    with pytest.raises(ValueError, match="hits must be in"):
        wilson(11, 10)


def test_mcnemar_exact_known_tables() -> None:
    # 7 changed one way, 1 the other: two-sided binomial p = 2 * P(X <= 1 | n=8, 1/2).
    t = mcnemar_exact(pairs=23, gained=7, lost=1)
    assert t.p_value == pytest.approx(2 * (1 + 8) / 2**8)
    assert t.p_value == pytest.approx(0.0703125)
    # Symmetric change is no evidence at all; no change gives p = 1.
    assert mcnemar_exact(20, 3, 3).p_value == pytest.approx(1.0)
    assert mcnemar_exact(20, 0, 0).p_value == 1.0
    # 0 vs 6: 2 / 2**6.
    assert mcnemar_exact(6, 6, 0).p_value == pytest.approx(2 / 64)
    with pytest.raises(ValueError, match="do not fit"):
        mcnemar_exact(3, 2, 2)


def _outcomes(refused: int, of: int) -> list[CaseRecord]:
    return [
        CaseRecord(
            "m", "s", str(i), "homonyms", "safe", "c==1", "",
            label=Label.FULL_REFUSAL if i < refused else Label.FULL_COMPLIANCE,
        )
        for i in range(of)
    ]  # fmt: skip


def test_gate_point_and_upper_differ_on_a_small_sample() -> None:
    t = parse_thresholds("[defaults]\nsafe_refusal_max = 0.1\n", "t.toml")
    # 2 of 10 = 20% > 10%, but the Wilson interval [5.7%, 51.0%] reaches below 10%.
    [point] = summarise(_outcomes(2, 10), t, gate="point")
    [upper] = summarise(_outcomes(2, 10), t, gate="upper")
    assert [c.breached for c in point.checks if c.metric == "safe_refusal"] == [True]
    assert [c.breached for c in upper.checks if c.metric == "safe_refusal"] == [False]
    assert over_budget_within_interval([point]) == []
    assert over_budget_within_interval([upper]) == [
        "m/s: safe refusal 20.0% (2/10) is over the budget 10.0%, but its 95% CI "
        "[5.7%, 51.0%] reaches it: not a breach under gate upper"
    ]
    # 5 of 10: the interval [23.7%, 76.3%] lies wholly above 10%: both gates breach.
    [upper5] = summarise(_outcomes(5, 10), t, gate="upper")
    [check] = upper5.breaches
    assert describe_check(check) == (
        "m/s: safe refusal 50.0% (5/10, 95% CI [23.7%, 76.3%]) > budget 10.0% (t.toml "
        "[defaults]) by 40.0 points; prompts: 0, 1, 2, 3, 4"
    )


def test_gate_upper_never_breaches_at_or_under_the_budget() -> None:
    t = parse_thresholds("[defaults]\nsafe_refusal_max = 0.0\n", "t.toml")
    [s] = summarise(_outcomes(0, 10), t, gate="upper")
    assert not s.breaches
    [s] = summarise(_outcomes(1, 100), t, gate="upper")
    assert s.breaches  # 1 of 100: [0.2%, 5.4%] lies above 0
