"""PNG plots for the report, drawn with matplotlib's Agg renderer.

Figures are built with ``matplotlib.figure.Figure`` and saved through the Agg
canvas directly, never through pyplot: no display, no global backend switch, and
nothing left open in the process that runs the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_xsafety.core.stats import wilson
from pytest_xsafety.engine.budgets import GroupSummary
from pytest_xsafety.engine.contrast import PAIR_OUTCOMES, PairSummary

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

DPI = 110
# Red where refusing is the failure (safe prompts), green where it is the goal (unsafe).
SIDES = (
    ("safe", "Safe prompts: refused = exaggerated safety (lower is better)", "Reds"),
    ("unsafe", "Unsafe prompts: refused (higher is better)", "Greens"),
)

# Pair outcomes: green is what a calibrated model does; red the lexical-overfitting signal.
COLOURS = {
    "calibrated": "#2ca02c",
    "over-cautious": "#d62728",
    "over-compliant": "#ff7f0e",
    "inverted": "#7f7f7f",
}


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="png")


def _column_names(models: Sequence[str], strategies: Sequence[str]) -> list[str]:
    one_model = len(set(models)) == 1
    return [s if one_model else f"{m}\n{s}" for m, s in zip(models, strategies, strict=True)]


def refusal_heatmap(table: pd.DataFrame, path: Path) -> None:
    """Refusal rate by prompt type (rows) x strategy (columns), safe and unsafe side by side.

    ``table`` is the per-type table (``types.csv``); cells are full + partial
    refusals over the type's scored cases, grey where nothing was scored.
    """
    import numpy as np

    groups = list(dict.fromkeys(zip(table["model"], table["strategy"], strict=True)))
    columns = _column_names([m for m, _ in groups], [s for _, s in groups])
    sides = []
    for side, title, cmap in SIDES:
        rows = table[table["expected"] == side]
        types = list(dict.fromkeys(rows["prompt_type"]))
        grid = np.full((len(types), len(groups)), np.nan)
        for ptype, model, strategy, rate in zip(
            rows["prompt_type"], rows["model"], rows["strategy"], rows["refusal_rate"], strict=True
        ):
            if rate is not None and rate == rate:  # NaN: nothing scored
                grid[types.index(ptype), groups.index((model, strategy))] = float(rate)
        sides.append((title, cmap, types, grid))
    height = 1.6 + 0.36 * max((len(t) for _, _, t, _ in sides), default=1)
    width = 2 * (2.6 + 0.9 * max(len(groups), 1)) + 1.0
    fig = _figure(width, max(height, 2.5))
    axes = fig.subplots(1, 2, squeeze=False)[0]
    for ax, (title, cmap, types, grid) in zip(axes, sides, strict=True):
        ax.set_title(title, fontsize=9)
        if not types or not groups:
            ax.text(0.5, 0.5, "no cases", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        image = ax.imshow(grid, cmap=_cmap(cmap), vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(groups)), columns, fontsize=8)
        ax.set_yticks(range(len(types)), types, fontsize=8)
        for (i, j), value in np.ndenumerate(grid):
            text = "n/a" if value != value else f"{100 * value:.0f}%"
            dark = value == value and value > 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")  # fmt: skip
        fig.colorbar(image, ax=ax, label="refused (full + partial)", shrink=0.8)
    fig.suptitle("Refusal rate by prompt type and strategy", fontsize=11)
    _save(fig, path)


def _cmap(name: str) -> Any:
    import matplotlib as mpl

    return mpl.colormaps[name].with_extremes(bad="#d9d9d9")


def tradeoff_plot(summaries: Sequence[GroupSummary], path: Path) -> None:
    """Safe refusal (x) against unsafe compliance (y), one point per model x strategy,
    with Wilson 95% intervals as error bars. The ideal model sits at (0, 0)."""
    import matplotlib as mpl

    fig = _figure(6.4, 5.0)
    ax = fig.subplots()
    colours = mpl.colormaps["tab10"]
    models = list(dict.fromkeys(s.model for s in summaries))
    plotted = False
    labelled: set[str] = set()
    # Strategies that land on the same point share one label instead of overprinting.
    names: dict[tuple[float, float], list[str]] = {}
    for s in summaries:
        x, y = s.safe_refusal_rate, s.unsafe_compliance_rate
        if x is None or y is None:
            continue
        xi = wilson(s.safe_full_refusal + s.safe_partial_refusal, s.safe)
        yi = wilson(s.unsafe_compliance, s.unsafe)
        if xi is None or yi is None:  # not reached: both rates exist
            continue
        first = s.model not in labelled
        labelled.add(s.model)
        ax.errorbar(
            [100 * x], [100 * y],
            xerr=[[100 * (x - xi.low)], [100 * (xi.high - x)]],
            yerr=[[100 * (y - yi.low)], [100 * (yi.high - y)]],
            fmt="o", capsize=3, color=colours(models.index(s.model) % 10),
            label=s.model if first else None,
        )  # fmt: skip
        name = s.strategy if len(models) == 1 else f"{s.model}/{s.strategy}"
        names.setdefault((round(100 * x, 1), round(100 * y, 1)), []).append(name)
        plotted = True
    for (x, y), group in names.items():
        ax.annotate(", ".join(group), (x, y), textcoords="offset points", xytext=(6, 6),
                    fontsize=8)  # fmt: skip
    if not plotted:
        ax.text(0.5, 0.5, "no group has both safe and unsafe cases", ha="center",
                va="center", transform=ax.transAxes)  # fmt: skip
    ax.set_xlim(-3, 103)
    ax.set_ylim(-3, 103)
    ax.set_xlabel("safe prompts refused, % (exaggerated safety)")
    ax.set_ylabel("unsafe prompts fully complied with, %")
    ax.set_title("Trade-off per strategy and model (95% Wilson intervals)", fontsize=10)
    ax.annotate("ideal", (0, 0), textcoords="offset points", xytext=(8, 8), fontsize=8,
                color="green")  # fmt: skip
    ax.grid(alpha=0.3)
    if plotted:
        ax.legend(title="model", fontsize=8)
    _save(fig, path)


def pair_outcome_plot(summaries: Sequence[PairSummary], path: Path) -> None:
    """One horizontal bar per model x strategy, split into the four outcomes' shares."""
    groups = [s for s in summaries if s.pairs]
    fig = _figure(7.0, 1.4 + 0.45 * max(len(groups), 1))
    ax = fig.subplots()
    if not groups:
        ax.text(0.5, 0.5, "no pair was counted", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        _save(fig, path)
        return
    one_model = len({s.model for s in groups}) == 1
    names = [s.strategy if one_model else f"{s.model}/{s.strategy}" for s in groups]
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
    ax.set_title("Contrast pairs per strategy (over-cautious = refuses both)", fontsize=10)
    fig.legend(ncols=4, fontsize=7, loc="outside lower center")
    _save(fig, path)
