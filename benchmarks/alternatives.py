"""Review-sample designs measured and not adopted (``estimation.py --alternatives``).

Each design draws K reviews per side from a development set R times, takes the human
labels of the drawn rows as the reviews, and is scored as the adopted design is: mean
|estimate - human rate|, the share of 95% intervals covering the human rate, the mean
width. Stratum error rates, where a design allocates by them, come from the other sets
(leave one set out). Only this benchmark uses this code; the plugin's estimator is
``pytest_xsafety.engine.estimate``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from benchmarks.devsets import DevSet
from pytest_xsafety.core.records import Decision, Expectation
from pytest_xsafety.engine.classify.registry import strmatch_label
from pytest_xsafety.engine.estimate import PRIOR_WEIGHT, StratumTally, counted, interval

Key = tuple[int, ...]
Rows = list[tuple[Key, bool, bool]]  # (stratum key, classifier counts it, human counts it)
Design = Callable[[Rows, dict[Key, float], int, np.random.Generator], tuple[float, float, float]]
SIDES: tuple[Expectation, ...] = ("safe", "unsafe")


def rows_of(ds: DevSet, decided: Sequence[Decision], side: Expectation, third: bool) -> Rows:
    """Each row's stratum key (the classifier's call, unsure, and with ``third`` whether
    strmatch disagrees), the classifier's call and the human's."""
    out: Rows = []
    for x, e, t, d in zip(ds.expected, ds.exchanges, ds.truth, decided, strict=True):
        if x != side:
            continue
        hit = counted(side, d.label)
        unsure = d.uncertain or d.label.value in ("partial_refusal", "unscored")
        level = 2 if unsure else int(third and counted(side, strmatch_label(e.response)) != hit)
        out.append(((int(hit), level), hit, counted(side, t)))
    return out


def neyman(rows: Rows, rates: dict[Key, float], k: int) -> dict[Key, int]:
    sizes: dict[Key, int] = {}
    for key, _, _ in rows:
        sizes[key] = sizes.get(key, 0) + 1
    floored = {key: max(0.02, rates.get(key, 0.02)) for key in sizes}
    weight = {key: n * np.sqrt(floored[key] * (1 - floored[key])) for key, n in sizes.items()}
    alloc = {key: min(2, n) for key, n in sizes.items()}
    for _ in range(min(k, len(rows)) - sum(alloc.values())):
        best = max((s for s in sizes if alloc[s] < sizes[s]),
                   key=lambda s: weight[s] ** 2 / (alloc[s] * (alloc[s] + 1) or 1))  # fmt: skip
        alloc[best] += 1
    return alloc


def stratified_draw(
    rows: Rows, alloc: dict[Key, int], rng: np.random.Generator
) -> list[StratumTally]:
    tallies = []
    for key, n in sorted(alloc.items()):
        members = [r for r in rows if r[0] == key]
        picked = rng.choice(len(members), size=n, replace=False)
        hits = sum(members[int(i)][2] for i in picked)
        # StratumTally wants a Stratum; the key's call rides in its second place.
        tallies.append(StratumTally(("safe", bool(key[0]), key[1] > 0), len(members), n, int(hits)))
    return tallies


def point(tallies: Sequence[StratumTally], n: int) -> float:
    return sum(t.size * t.hits / t.reviewed for t in tallies if t.reviewed) / n


def adopted_priors(third: bool) -> Design:
    def design(
        rows: Rows, rates: dict[Key, float], k: int, rng: np.random.Generator
    ) -> tuple[float, float, float]:
        tallies = stratified_draw(rows, neyman(rows, rates, k), rng)
        low, high = interval(tallies)
        return point(tallies, len(rows)), low / len(rows), high / len(rows)

    return design


def symmetric_jeffreys(
    rows: Rows, rates: dict[Key, float], k: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    from pytest_xsafety.engine import estimate

    tallies = stratified_draw(rows, neyman(rows, rates, k), rng)
    half = (PRIOR_WEIGHT, PRIOR_WEIGHT)
    low = estimate._quantile(tallies, half, 0.025)
    high = estimate._quantile(tallies, half, 0.975)
    return point(tallies, len(rows)), low / len(rows), high / len(rows)


def fixed_normal(
    rows: Rows, rates: dict[Key, float], k: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    fixed = {key: 0.35 if key[1] else 0.06 for key in rates}
    tallies = stratified_draw(rows, neyman(rows, fixed, k), rng)
    n = len(rows)
    var = 0.0
    for t in tallies:
        e = (min(t.hits, t.reviewed - t.hits) + 0.5) / (t.reviewed + 1)  # smoothed
        var += (t.size / n) ** 2 * e * (1 - e) / t.reviewed * (1 - t.reviewed / t.size)
    p = point(tallies, n)
    return p, p - 1.96 * np.sqrt(var), p + 1.96 * np.sqrt(var)


def srs_wilson(
    rows: Rows, rates: dict[Key, float], k: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    picked = rng.choice(len(rows), size=k, replace=False)
    hits = sum(rows[int(i)][2] for i in picked)
    low, high = proportion_confint(hits, k, method="wilson")
    return hits / k, float(low), float(high)


def srs_ppi(
    rows: Rows, rates: dict[Key, float], k: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    picked = rng.choice(len(rows), size=k, replace=False)
    diff = np.array([int(rows[int(i)][2]) - int(rows[int(i)][1]) for i in picked])
    p = sum(r[1] for r in rows) / len(rows) + float(diff.mean())
    se = float(diff.std(ddof=1)) / np.sqrt(k) * np.sqrt(1 - k / len(rows))
    return p, p - 1.96 * se, p + 1.96 * se


DESIGNS: dict[str, tuple[Design, bool]] = {
    "simple random sample, human labels alone, Wilson": (srs_wilson, False),
    "simple random sample, PPI, normal interval": (srs_ppi, False),
    "strata, fixed allocation (6% / 35%), normal on a smoothed variance": (fixed_normal, False),
    "strata, measured allocation, symmetric Jeffreys prior": (symmetric_jeffreys, False),
    "adopted: strata, measured allocation, one-sided half-case priors": (
        adopted_priors(False),
        False,
    ),
    "adopted + a stratum level for default/strmatch disagreement": (adopted_priors(True), True),
}


def compare(sets: Sequence[tuple[DevSet, list[Decision]]], k: int, repeat: int, seed: int) -> None:
    print(f"Designs at K = {k} per side, R = {repeat}, leave one set out where rates allocate")
    for name, (design, third) in DESIGNS.items():
        rng = np.random.default_rng(seed)
        figures = []
        for ds, decided in sets:
            for side in SIDES:
                rows = rows_of(ds, decided, side, third)
                rates = _rates([o for o in sets if o[0] is not ds], side, third)
                truth = sum(r[2] for r in rows) / len(rows)
                errors, covered, widths = [], 0, []
                for _ in range(repeat):
                    p, low, high = design(rows, rates, k, rng)
                    errors.append(abs(p - truth))
                    covered += low - 1e-12 <= truth <= high + 1e-12
                    widths.append(high - low)
                figures.append(
                    (
                        ds.name,
                        side,
                        100 * float(np.mean(errors)),
                        covered / repeat,
                        100 * float(np.mean(widths)),
                    )
                )
        xstest = [f for f in figures if f[0] != "rbr"]
        worst = min(figures, key=lambda f: f[3])
        width = np.mean([f[4] for f in xstest])
        print(f"  {name}: XSTest sets mean |error| {np.mean([f[2] for f in xstest]):.2f}, worst "
              f"{max(f[2] for f in xstest):.2f} pts; lowest coverage {worst[3]:.3f} ({worst[0]} "
              f"{worst[1]}); XSTest mean width {width:.1f} pts")  # fmt: skip


def _rates(
    sets: Sequence[tuple[DevSet, list[Decision]]], side: Expectation, third: bool
) -> dict[Key, float]:
    counts: dict[Key, list[int]] = {}
    for ds, decided in sets:
        for key, hit, human in rows_of(ds, decided, side, third):
            c = counts.setdefault(key, [0, 0])
            c[0] += 1
            c[1] += hit != human
    return {key: (e + 0.5) / (n + 1) for key, (n, e) in counts.items()}
