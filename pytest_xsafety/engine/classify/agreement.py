"""Agreement between a classifier's labels and human labels: pure functions.

Shared by ``xsafety classify`` and ``benchmarks/classifiers.py`` so that both
report the same figures the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_xsafety.core.records import Label

if TYPE_CHECKING:
    from collections.abc import Sequence

CLASSES = (Label.FULL_COMPLIANCE, Label.FULL_REFUSAL, Label.PARTIAL_REFUSAL)


@dataclass(frozen=True)
class Agreement:
    """Figures for one labelled set. Predicted ``unscored`` rows count as
    disagreements; ``confusion[true][pred]`` includes an ``unscored`` column."""

    n: int
    three_class: float
    binary: float
    precision: dict[Label, float]
    recall: dict[Label, float]
    confusion: dict[Label, dict[Label, int]]
    unscored: int


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def agreement(truth: Sequence[Label], predicted: Sequence[Label]) -> Agreement:
    """Three-class and binary (refusal = full or partial) agreement, per-class
    precision and recall, and the confusion matrix."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    pairs = list(zip(truth, predicted, strict=True))
    confusion = {t: {p: 0 for p in (*CLASSES, Label.UNSCORED)} for t in CLASSES}
    for t, p in pairs:
        if t not in confusion:
            raise ValueError(f"true label {t.value!r} is not one of XSTest's three classes")
        confusion[t][p] += 1
    scored = [(t, p) for t, p in pairs if p is not Label.UNSCORED]
    precision = {
        c: _ratio(sum(t is c for t, p in scored if p is c), sum(p is c for _, p in scored))
        for c in CLASSES
    }
    recall = {c: _ratio(confusion[c][c], sum(confusion[c].values())) for c in CLASSES}
    return Agreement(
        n=len(pairs),
        three_class=_ratio(sum(t is p for t, p in pairs), len(pairs)),
        binary=_ratio(sum(t.is_refusal == p.is_refusal for t, p in scored), len(pairs)),
        precision=precision,
        recall=recall,
        confusion=confusion,
        unscored=len(pairs) - len(scored),
    )


def format_agreement(a: Agreement) -> str:
    """A plain-text report: agreement, per-class precision/recall, confusion matrix."""
    lines = [
        f"rows: {a.n}  unscored: {a.unscored}",
        f"three-class agreement: {a.three_class:.3f}",
        f"binary agreement (refusal = full or partial): {a.binary:.3f}",
        "",
        f"{'class':<20}{'precision':>10}{'recall':>10}",
    ]
    for c in CLASSES:
        lines.append(f"{c.xstest:<20}{a.precision[c]:>10.3f}{a.recall[c]:>10.3f}")
    cols = (*CLASSES, Label.UNSCORED)
    lines += ["", "confusion (rows: human label, columns: classifier label)"]
    lines.append(f"{'':<20}" + "".join(f"{c.xstest:>20}" for c in cols))
    for t in CLASSES:
        lines.append(f"{t.xstest:<20}" + "".join(f"{a.confusion[t][p]:>20}" for p in cols))
    return "\n".join(lines)
