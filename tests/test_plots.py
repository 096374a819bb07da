"""The report's plots read without the tables: counts in every heatmap cell, untinted
cells where nothing was refused, budgets drawn, strategies told apart, names in a
legend (never overprinted), axes fitted to the data, and every figure states its n."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from pytest_xsafety.engine.budgets import GroupSummary
from pytest_xsafety.engine.contrast import PairSummary
from pytest_xsafety.reporting.plots import heatmap_figure, pair_outcome_figure, tradeoff_figure
from pytest_xsafety.reporting.tables import types_frame
from tests.helpers import make_report, result_set

# result_set(): baseline refuses all 5 safe homonyms (4 full, 1 partial) and no
# figurative one, complies with no unsafe prompt; helpful refuses no safe prompt and
# complies with 2 unsafe ones; one helpful case errored. Budgets: safe <= 20%,
# unsafe <= 10%.


def _marker(container: Any) -> Line2D:
    """An errorbar's point (its first child)."""
    line = container.get_children()[0]
    assert isinstance(line, Line2D)
    return line


def _texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_heatmap_cells_carry_counts_and_untinted_zeros() -> None:
    report = make_report(result_set())
    fig = heatmap_figure(types_frame(report), report.summaries)
    safe, unsafe = fig.axes[:2]  # then the two colorbars
    # Rows homonyms, figurative; columns baseline, helpful. The errored case is not scored.
    assert _texts(safe) == ["5/5\n100%", "0/5\n0%", "0/5\n0%", "0/5\n0%"]
    assert _texts(unsafe) == ["5/5\n100%", "4/5\n80%", "5/5\n100%", "4/5\n80%"]
    zero, some = safe.images[0].to_rgba(np.array([[0.0, 0.05]]))[0]
    assert tuple(zero) == (1.0, 1.0, 1.0, 1.0)  # 0%: white, not tinted
    assert tuple(some[:3]) != (1.0, 1.0, 1.0)  # any refusal is tinted
    assert [t.get_text() for t in safe.get_xticklabels()] == [
        "baseline\nrefused ≤20%",
        "helpful\nrefused ≤20%",
    ]
    assert [t.get_text() for t in unsafe.get_xticklabels()] == [
        "baseline\ncomplied ≤10%",
        "helpful\ncomplied ≤10%",
    ]
    assert fig.get_suptitle() == (
        "Refusal rate by prompt type and strategy: 41 cases; each cell refused/scored"
    )


def test_tradeoff_names_points_in_a_legend_with_counts_and_draws_budgets() -> None:
    report = make_report(result_set())
    fig = tradeoff_figure(report.summaries)
    (ax,) = fig.axes
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [
        "budget: safe refused ≤20.0%",
        "budget: unsafe complied ≤10.0%",
        "baseline: 5/10 safe refused, 0/10 unsafe complied",
        "helpful: 0/10 safe refused, 2/10 unsafe complied",
    ]
    assert _texts(ax) == []  # no free labels that could overprint each other
    # Budget lines where the budgets are: a vertical one at 20%, a horizontal one at 10%.
    dashed = [
        np.asarray(line.get_xydata()) for line in ax.get_lines() if line.get_linestyle() == "--"
    ]
    assert [float(xy[0, 0]) for xy in dashed if xy[0, 0] == xy[1, 0]] == [20.0]
    assert [float(xy[0, 1]) for xy in dashed if xy[0, 1] == xy[1, 1]] == [10.0]
    # Axes fitted to the data: the highest interval end is 76.3% (5/10) and 51.0% (2/10).
    assert 76.3 < ax.get_xlim()[1] < 90
    assert 51.0 < ax.get_ylim()[1] < 60
    # One colour per strategy.
    colours = {str(_marker(c).get_color()) for c in ax.containers}
    assert len(colours) == 2
    assert "10 safe, 10 unsafe prompts per point" in fig.get_suptitle()


def _summary(strategy: str, refused: int) -> GroupSummary:
    return GroupSummary("m", strategy, 20, 10, refused, 0, 10, 1, 0, ())


def test_tradeoff_keeps_points_at_one_place_apart() -> None:
    fig = tradeoff_figure([_summary("a", 2), _summary("b", 2), _summary("c", 5)])
    (ax,) = fig.axes
    spots = [_marker(c) for c in ax.containers]
    shown = [line.get_transform().transform(np.asarray(line.get_xydata())[0]) for line in spots]
    assert shown[0][0] != shown[1][0]  # same rates, drawn side by side
    assert shown[0][1] == shown[1][1]
    # No budget: no budget line, and the legend says nothing of one.
    assert not any("budget" in label for label in ax.get_legend_handles_labels()[1])


def test_pair_plot_states_the_pairs_per_bar() -> None:
    groups = [
        PairSummary("m", "baseline", 2, 2, 11, 1, 0),
        replace(PairSummary("m", "strict", 3, 0, 13, 0, 0)),
    ]
    fig = pair_outcome_figure(groups)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["baseline (n=16)", "strict (n=16)"]
    assert ax.get_title() == (
        "Contrast pairs per strategy: 16 pairs counted per bar (over-cautious = refuses both)"
    )
    assert "11" in _texts(ax)  # segments carry their counts
