"""PNG plots for the report, drawn with matplotlib's Agg renderer.

Figures are built with ``matplotlib.figure.Figure`` and saved through the Agg
canvas directly, never through pyplot: no display, no global backend switch, and
nothing left open in the process that runs the tests.

Each plot reads without the tables: every cell or point carries its counts (k/n),
every figure states its n, budgets are drawn where they apply, and names go in
legends or tick labels, never as free text that can overprint. Each ``*_figure``
function builds the figure (tests inspect it); the plain-named one saves it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_xsafety.core.stats import wilson
from pytest_xsafety.engine.budgets import GroupSummary
from pytest_xsafety.engine.contrast import PAIR_OUTCOMES, PairSummary

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
# Red where refusing is the failure (safe prompts), green where it is the goal (unsafe).
SIDES = (
    ("safe", "Safe prompts: refused = exaggerated safety (lower is better)", "Reds"),
    ("unsafe", "Unsafe prompts: refused (higher is better)", "Greens"),
)
NOTHING = "#d9d9d9"  # a cell with no scored case
UNTINTED = "#ffffff"  # a cell where nothing was refused

# Pair outcomes: green is what a calibrated model does; red the lexical-overfitting signal.
COLOURS = {
    "calibrated": "#2ca02c",
    "over-cautious": "#d62728",
    "over-compliant": "#ff7f0e",
    "inverted": "#7f7f7f",
}
MARKERS = "osD^vP*Xh<>p"  # one per model on the trade-off plot


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="png")


def _name(model: str, strategy: str, one_model: bool) -> str:
    return strategy if one_model else f"{model}/{strategy}"


def _limits(summaries: Sequence[GroupSummary]) -> dict[tuple[str, str], dict[str, float]]:
    """Each group's whole-group budgets, by metric."""
    return {
        (s.model, s.strategy): {
            c.metric: c.limit for c in s.checks if c.scope is None and c.limit is not None
        }
        for s in summaries
    }


# -- refusal heatmap ----------------------------------------------------------------------


def refusal_heatmap(
    table: pd.DataFrame, path: Path, summaries: Sequence[GroupSummary] = ()
) -> None:
    """Refusal rate by prompt type (rows) x model x strategy (columns), safe and unsafe
    side by side; see :func:`heatmap_figure`."""
    _save(heatmap_figure(table, summaries), path)


def heatmap_figure(table: pd.DataFrame, summaries: Sequence[GroupSummary] = ()) -> Figure:
    """``table`` is the per-type table (``types.csv``). Each cell: refused / scored
    (``3/5``) and the rate; white where nothing was refused, grey where nothing was
    scored. Column labels carry each group's budget for that side (``summaries``)."""
    import numpy as np

    groups = list(dict.fromkeys(zip(table["model"], table["strategy"], strict=True)))
    one_model = len({m for m, _ in groups}) == 1
    limits = _limits(summaries)
    sides = []
    for side, title, cmap in SIDES:
        rows = table[table["expected"] == side]
        types = list(dict.fromkeys(rows["prompt_type"]))
        grid = np.full((len(types), len(groups)), np.nan)
        counts: dict[tuple[int, int], tuple[int, int]] = {}
        for ptype, model, strategy, refusals, rate, cases, errors, unscored in zip(
            rows["prompt_type"], rows["model"], rows["strategy"], rows["refusals"],
            rows["refusal_rate"], rows["cases"], rows["errors"], rows["unscored"], strict=True,
        ):  # fmt: skip
            i, j = types.index(ptype), groups.index((model, strategy))
            scored = int(cases) - int(errors) - int(unscored)
            counts[i, j] = (int(refusals), scored)
            if rate is not None and rate == rate:  # NaN: nothing scored
                grid[i, j] = float(rate)
        sides.append((side, title, cmap, types, grid, counts))
    height = 1.9 + 0.36 * max((len(t) for *_, t, _, _ in sides), default=1)
    width = 2 * (2.8 + 1.0 * max(len(groups), 1)) + 1.0
    fig = _figure(width, max(height, 2.8))
    axes = fig.subplots(1, 2, squeeze=False)[0]
    for ax, (side, title, cmap, types, grid, counts) in zip(axes, sides, strict=True):
        ax.set_title(title, fontsize=9)
        if not types or not groups:
            ax.text(0.5, 0.5, "no cases", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        # Rates of exactly 0 fall under vmin: drawn white, so a tint always means refusals.
        image = ax.imshow(grid, cmap=_cmap(cmap), vmin=1e-9, vmax=1.0, aspect="auto")
        metric = "safe_refusal" if side == "safe" else "unsafe_compliance"
        ax.set_xticks(range(len(groups)), [
            _column(m, s, one_model, limits.get((m, s), {}).get(metric), side)
            for m, s in groups
        ], fontsize=8)  # fmt: skip
        ax.set_yticks(range(len(types)), types, fontsize=8)
        for (i, j), value in np.ndenumerate(grid):
            hits, scored = counts.get((i, j), (0, 0))
            text = f"{hits}/{scored}\n{100 * value:.0f}%" if value == value else "n/a"
            dark = value == value and value > 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")  # fmt: skip
        bar = fig.colorbar(image, ax=ax, label="refused (full + partial)", shrink=0.8)
        bar.set_ticks([1e-9, 0.25, 0.5, 0.75, 1.0], labels=["0%", "25%", "50%", "75%", "100%"])
    cases = int(table["cases"].sum()) if len(table) else 0
    fig.suptitle(
        f"Refusal rate by prompt type and strategy: {cases} cases; each cell refused/scored",
        fontsize=11,
    )
    return fig


def _column(model: str, strategy: str, one_model: bool, limit: float | None, side: str) -> str:
    name = strategy if one_model else f"{model}\n{strategy}"
    if limit is None:
        return f"{name}\nno budget"
    what = "refused" if side == "safe" else "complied"
    return f"{name}\n{what} ≤{100 * limit:.0f}%"


def _cmap(name: str) -> Any:
    import matplotlib as mpl

    return mpl.colormaps[name].with_extremes(bad=NOTHING, under=UNTINTED)


# -- trade-off ------------------------------------------------------------------------------


def tradeoff_plot(summaries: Sequence[GroupSummary], path: Path) -> None:
    """Safe refusal against unsafe compliance per model x strategy; see
    :func:`tradeoff_figure`."""
    _save(tradeoff_figure(summaries), path)


def tradeoff_figure(summaries: Sequence[GroupSummary]) -> Figure:
    """Safe refusal (x) against unsafe compliance (y), one point per model x strategy
    with Wilson 95% intervals: colour by strategy, marker by model, each named with its
    counts in the legend (labels in the plot would overprint). Dashed lines are the
    budgets; the axes fit the data and the budgets. The ideal model sits at (0, 0)."""
    import matplotlib as mpl
    from matplotlib.transforms import offset_copy

    fig = _figure(7.0, 6.0)
    ax = fig.subplots()
    points = [s for s in summaries if s.safe_refusal_rate is not None
              and s.unsafe_compliance_rate is not None]  # fmt: skip
    if not points:
        ax.text(0.5, 0.5, "no group has both safe and unsafe cases", ha="center",
                va="center", transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        return fig
    colours = mpl.colormaps["tab10"]
    strategies = list(dict.fromkeys(s.strategy for s in points))
    models = list(dict.fromkeys(s.model for s in points))
    one_model = len(models) == 1
    highest = [0.0, 0.0]
    seen: dict[tuple[float, float], int] = {}  # points at one place, dodged sideways
    for s in points:
        refused = s.safe_full_refusal + s.safe_partial_refusal
        xi, yi = wilson(refused, s.safe), wilson(s.unsafe_compliance, s.unsafe)
        x, y = s.safe_refusal_rate or 0.0, s.unsafe_compliance_rate or 0.0
        if xi is None or yi is None:  # not reached: both sides have cases
            continue
        highest = [max(highest[0], xi.high), max(highest[1], yi.high)]
        name = _name(s.model, s.strategy, one_model)
        place = (round(x, 6), round(y, 6))
        dodge = 7.0 * seen.get(place, 0)
        seen[place] = seen.get(place, 0) + 1
        ax.errorbar(
            [100 * x], [100 * y],
            xerr=[[100 * (x - xi.low)], [100 * (xi.high - x)]],
            yerr=[[100 * (y - yi.low)], [100 * (yi.high - y)]],
            fmt=MARKERS[models.index(s.model) % len(MARKERS)], markersize=7, capsize=3,
            color=colours(strategies.index(s.strategy) % 10), alpha=0.9,
            transform=offset_copy(ax.transData, fig=fig, x=dodge, units="points"),
            label=f"{name}: {refused}/{s.safe} safe refused, "
                  f"{s.unsafe_compliance}/{s.unsafe} unsafe complied",
        )  # fmt: skip
    budgets = _budget_lines(ax, points, one_model)
    xs = [100 * highest[0], *(100 * v for v in budgets["safe_refusal"])]
    ys = [100 * highest[1], *(100 * v for v in budgets["unsafe_compliance"])]
    ax.set_xlim(*_fitted(xs))
    ax.set_ylim(*_fitted(ys))
    ax.set_xlabel("safe prompts refused, % (exaggerated safety)")
    ax.set_ylabel("unsafe prompts fully complied with, %")
    sizes = sorted({(s.safe, s.unsafe) for s in points})
    n = "; ".join(f"{a} safe, {b} unsafe prompts" for a, b in sizes)
    fig.suptitle(f"Safe refusal against unsafe compliance per strategy\n({n} per point; "
                 "bars: 95% Wilson intervals; the ideal is the bottom-left corner)",
                 fontsize=9)  # fmt: skip
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, ncols=2, loc="outside lower center")
    return fig


def _budget_lines(
    ax: Axes, points: Sequence[GroupSummary], one_model: bool
) -> Mapping[str, list[float]]:
    """Dashed lines at each distinct budget, named with the groups they apply to."""
    limits = _limits(points)
    drawn: dict[str, dict[float, list[str]]] = {"safe_refusal": {}, "unsafe_compliance": {}}
    for s in points:
        for metric, value in limits.get((s.model, s.strategy), {}).items():
            if metric in drawn:
                drawn[metric].setdefault(value, []).append(_name(s.model, s.strategy, one_model))
    for metric, lines in drawn.items():
        everyone = len(lines) == 1 and len(next(iter(lines.values()))) == len(points)
        for value, names in lines.items():
            who = "" if everyone else f" ({', '.join(names)})"
            if metric == "safe_refusal":
                label = f"budget: safe refused ≤{100 * value:.1f}%{who}"
                ax.axvline(100 * value, color="#d62728", linestyle="--", linewidth=1, label=label)
            else:
                label = f"budget: unsafe complied ≤{100 * value:.1f}%{who}"
                ax.axhline(100 * value, color="#2ca02c", linestyle="--", linewidth=1, label=label)
    return {metric: list(lines) for metric, lines in drawn.items()}


def _fitted(values: Sequence[float]) -> tuple[float, float]:
    """An axis from just below 0 to a little above the highest value; a little above
    100% at most, so a budget of 100% still shows."""
    top = min(103.0, max(5.0, max(values, default=0.0)) * 1.08 + 1.0)
    return -0.03 * top, top


# -- contrast pairs ---------------------------------------------------------------------


def pair_outcome_plot(summaries: Sequence[PairSummary], path: Path) -> None:
    """One bar per model x strategy split into the four outcomes; see
    :func:`pair_outcome_figure`."""
    _save(pair_outcome_figure(summaries), path)


def pair_outcome_figure(summaries: Sequence[PairSummary]) -> Figure:
    """Each bar: the shares of the group's counted pairs (their number in the bar's
    label), each segment with its count."""
    groups = [s for s in summaries if s.pairs]
    fig = _figure(7.4, 1.5 + 0.45 * max(len(groups), 1))
    ax = fig.subplots()
    if not groups:
        ax.text(0.5, 0.5, "no pair was counted", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        return fig
    one_model = len({s.model for s in groups}) == 1
    names = [f"{_name(s.model, s.strategy, one_model)} (n={s.pairs})" for s in groups]
    left = [0.0] * len(groups)
    for outcome in PAIR_OUTCOMES:
        widths = [100 * (s.share(outcome) or 0.0) for s in groups]
        ax.barh(names, widths, left=left, color=COLOURS[outcome], label=outcome)
        for i, (x, w) in enumerate(zip(left, widths, strict=True)):
            if w >= 6:  # label only segments wide enough to hold it
                ax.text(x + w / 2, i, str(groups[i].count(outcome)), ha="center",
                        va="center", fontsize=7, color="white")  # fmt: skip
        left = [x + w for x, w in zip(left, widths, strict=True)]
    ax.invert_yaxis()  # first group on top, as in the tables
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of counted contrast pairs, %")
    sizes = sorted({s.pairs for s in groups})
    counted = "/".join(str(n) for n in sizes)
    ax.set_title(
        f"Contrast pairs per strategy: {counted} pairs counted per bar "
        "(over-cautious = refuses both)",
        fontsize=10,
    )
    fig.legend(ncols=4, fontsize=7, loc="outside lower center")
    return fig
