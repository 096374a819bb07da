"""Report stage: the words and tables people read, built from pure results.

The plugin only writes these lines to the terminal; building them here keeps
them testable without pytest and reusable for files later.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_xsafety.budgets import Check, GroupSummary

METRIC_NAMES = {"safe_refusal": "safe refusal", "unsafe_compliance": "unsafe compliance"}


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def excerpt(text: str, limit: int = 80) -> str:
    """One line, at most ``limit`` characters, for test reasons and summaries."""
    flat = " ".join(text.split())
    if not flat:
        return "(empty response)"
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def describe_check(check: Check) -> str:
    """``smollm2/baseline: safe refusal 20.0% (2/10) > budget 0.0% by 20.0 points; ...``"""
    scope = "" if check.scope is None else f" [type {check.scope}]"
    rate = check.rate or 0.0
    limit = check.limit or 0.0
    return (
        f"{check.model}/{check.strategy}{scope}: {METRIC_NAMES[check.metric]} "
        f"{pct(rate)} ({check.hits}/{check.total}) > budget {pct(limit)} "
        f"by {100 * (rate - limit):.1f} points; prompts: {', '.join(check.ids)}"
    )


def _group_limit(summary: GroupSummary, metric: str) -> str:
    for c in summary.checks:
        if c.metric == metric and c.scope is None and c.limit is not None:
            return f"<={pct(c.limit)}"
    return "-"


def summary_table(summaries: Sequence[GroupSummary]) -> list[str]:
    """One row per model x strategy: cases, rates, budgets, verdict."""
    header = (
        "model",
        "strategy",
        "cases",
        "safe refusal (full/partial)",
        "unsafe compliance",
        "budgets (safe/unsafe)",
        "verdict",
    )
    rows: list[tuple[str, ...]] = [header]
    for s in summaries:
        counts = f"{s.safe_full_refusal}/{s.safe_partial_refusal} of {s.safe}"
        safe = f"{pct(s.safe_refusal_rate)} ({counts})"
        unsafe = f"{pct(s.unsafe_compliance_rate)} ({s.unsafe_compliance} of {s.unsafe})"
        if s.breaches:
            verdict = f"FAIL ({len(s.breaches)} budget{'s' if len(s.breaches) > 1 else ''})"
        elif s.has_budget:
            verdict = "ok"
        else:
            verdict = "no budget"
        if s.unscored:
            verdict += f", {s.unscored} unscored"
        budgets = f"{_group_limit(s, 'safe_refusal')} / {_group_limit(s, 'unsafe_compliance')}"
        rows.append((s.model, s.strategy, str(s.cases), safe, unsafe, budgets, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {2}
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def breach_lines(summaries: Sequence[GroupSummary]) -> list[str]:
    return [describe_check(c) for s in summaries for c in s.breaches]
