"""The words and tables people read: rates, budgets, breaches, the study, changes.

Pure functions of budget summaries, shared by the terminal summary and the
report files, so that both say the same thing the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_xsafety.core.choices import Metric
from pytest_xsafety.core.records import CaseRecord, Expectation
from pytest_xsafety.core.stats import Interval
from pytest_xsafety.engine.budgets import Check, GroupSummary
from pytest_xsafety.reporting.compare import GroupChange, SideChange

METRIC_NAMES = {
    "safe_refusal": "safe refusal",
    "unsafe_compliance": "unsafe compliance",
    "overcautious_pairs": "over-cautious pairs",
}


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def ci(interval: Interval | None) -> str:
    """``[5.7%, 51.0%]``: a 95% interval in percent."""
    return "n/a" if interval is None else f"[{pct(interval.low)}, {pct(interval.high)}]"


def describe_check(check: Check, most: int | None = None) -> str:
    """``smollm2/baseline: safe refusal 20.0% (2/10) > budget 0.0% by 20.0 points; ...``

    ``most`` caps the prompt ids listed: each failing case names its breach, so
    listing every id there would make the output grow with the square of the failures.
    """
    scope = "" if check.scope is None else f" [type {check.scope}]"
    rate = check.rate or 0.0
    limit = check.limit or 0.0
    origin = f" ({check.origin})" if check.origin else ""
    if check.by_estimate and check.estimate is not None:
        est = check.estimate
        return (
            f"{check.model}/{check.strategy}: {METRIC_NAMES[check.metric]}, estimated human "
            f"rate {pct(est.value)} {ci(Interval(est.low, est.high))} from {est.reviewed} "
            f"reviews > budget {pct(limit)}{origin} by {100 * (est.value - limit):.1f} points "
            f"(the run's labels say {pct(rate)}, {check.hits}/{check.total}); prompts they "
            f"count: {listed(check.ids, most)}"
        )
    # Under the interval gate the interval is the evidence, so it is shown.
    interval = f", 95% CI {ci(check.interval)}" if check.gate == "upper" else ""
    return (
        f"{check.model}/{check.strategy}{scope}: {METRIC_NAMES[check.metric]} "
        f"{pct(rate)} ({check.hits}/{check.total}{interval}) > budget {pct(limit)}{origin} "
        f"by {100 * (rate - limit):.1f} points; prompts: {listed(check.ids, most)}"
    )


def budget_sources(summaries: Sequence[GroupSummary]) -> list[str]:
    """Where each group's budgets were set: ``budgets smollm2/baseline: safe refusal
    <=15.0% (thresholds.toml [models.smollm2]); ...``."""
    lines = []
    for s in summaries:
        parts = [
            f"{METRIC_NAMES[c.metric]}{'' if c.scope is None else f' [type {c.scope}]'} "
            f"<={pct(c.limit)} ({c.origin})"
            for c in s.checks
            if c.limit is not None and c.origin
        ]
        if parts:
            lines.append(f"budgets {s.model}/{s.strategy}: {'; '.join(parts)}")
    return lines


def listed(ids: Sequence[str], most: int | None = None) -> str:
    """``1, 2, 3 and 7 more``: at most ``most`` ids (all when None)."""
    if most is None or len(ids) <= most:
        return ", ".join(ids)
    return f"{', '.join(ids[:most])} and {len(ids) - most} more (all in the summary)"


def over_budget_within_interval(summaries: Sequence[GroupSummary]) -> list[str]:
    """Checks whose rate exceeds the budget but which the ``upper`` gate let pass, or
    which the estimated human rate holds under gate ``estimate``."""
    lines = []
    for s in summaries:
        for c in s.checks:
            if not c.over_budget or c.breached or c.undecided:
                continue
            scope = "" if c.scope is None else f" [type {c.scope}]"
            if c.by_estimate and c.estimate is not None:
                est = c.estimate
                lines.append(
                    f"{c.model}/{c.strategy}: {METRIC_NAMES[c.metric]} {pct(c.rate)} "
                    f"({c.hits}/{c.total}) is over the budget {pct(c.limit)} by the run's "
                    f"labels, but the estimated human rate {pct(est.value)} "
                    f"{ci(Interval(est.low, est.high))} lies at or below it: holds under gate "
                    "estimate"
                )
                continue
            lines.append(
                f"{c.model}/{c.strategy}{scope}: {METRIC_NAMES[c.metric]} {pct(c.rate)} "
                f"({c.hits}/{c.total}) is over the budget {pct(c.limit)}, but its 95% CI "
                f"{ci(c.interval)} reaches it: not a breach under gate upper"
            )
    return lines


def group_verdict(s: GroupSummary) -> str:
    """``fail``, ``no budget`` (a side with cases has none: not gated), ``ok`` or
    ``none generated``: the group's word in every output."""
    if not s.cases:
        return NONE_GENERATED
    if s.breaches:
        return "fail"
    if s.undecided:
        return "undecided"
    return NO_BUDGET if s.not_gated else "ok"


NONE_GENERATED = "none generated"  # every case of the group errored: nothing to judge
NO_BUDGET = "no budget"
SIDE_NAMES = {"safe_refusal": "safe", "unsafe_compliance": "unsafe"}
NO_BUDGET_FIX = (
    "set safe_refusal_max and unsafe_compliance_max in thresholds.toml ([defaults] or "
    "[models.NAME]; `xsafety init` writes one), or pass --xsafety-allow-no-budget to report "
    "them without gating"
)


def verdict_cell(s: GroupSummary) -> str:
    """The verdict column: ``ok``, ``FAIL (1 budget)``, ``no budget (unsafe)`` ..."""
    verdict = group_verdict(s)
    if verdict == "fail":
        return f"FAIL ({len(s.breaches)} budget{'s' if len(s.breaches) > 1 else ''})"
    if verdict == NO_BUDGET:
        return f"{NO_BUDGET} ({', '.join(SIDE_NAMES[m] for m in s.not_gated)})"
    if verdict == "undecided":
        return "UNDECIDED (review more)"
    return verdict


def not_gated_groups(summaries: Sequence[GroupSummary]) -> list[str]:
    """``fake/baseline: safe refusal 40.0% (4/10), unsafe compliance 0.0% (0/8)``: per
    model x strategy, the sides that have cases but no budget, with their rates."""
    lines = []
    for s in summaries:
        if not s.cases or not s.not_gated:
            continue
        refused = s.safe_full_refusal + s.safe_partial_refusal
        counts = {"safe_refusal": (refused, s.safe),
                  "unsafe_compliance": (s.unsafe_compliance, s.unsafe)}  # fmt: skip
        sides = ", ".join(
            f"{METRIC_NAMES[m]} {pct(counts[m][0] / counts[m][1])} ({counts[m][0]}/{counts[m][1]})"
            for m in s.not_gated
        )
        lines.append(f"{s.model}/{s.strategy}: {sides}")
    return lines


def not_gated_line(summaries: Sequence[GroupSummary], allowed: bool) -> str | None:
    """The one line that says what no budget gates; None when every side is gated."""
    groups = not_gated_groups(summaries)
    if not groups:
        return None
    what = f"no budget for {'; '.join(groups)}"
    if allowed:
        return f"not gated (--xsafety-allow-no-budget): {what}; these rates judge nothing"
    return f"not gated, so the run fails: {what}; {NO_BUDGET_FIX}"


def error_lines(records: Sequence[CaseRecord]) -> list[str]:
    """``m/s: 3 case(s) errored: <cause>`` per group with errored cases, in run order;
    the most frequent cause is named, the others counted."""
    causes: dict[str, dict[str, int]] = {}
    for r in records:
        if r.label is not None:
            continue
        tally = causes.setdefault(f"{r.model}/{r.strategy}", {})
        cause = r.error or "not generated"
        tally[cause] = tally.get(cause, 0) + 1
    lines = []
    for group, tally in causes.items():
        top = max(tally, key=lambda c: tally[c])
        others = len(tally) - 1
        more = f" (and {others} other cause{'s' if others > 1 else ''})" if others else ""
        lines.append(
            f"{group}: {sum(tally.values())} case(s) errored: {top}{more}; they count in no rate"
        )
    return lines


def uncertain_line(records: Sequence[CaseRecord]) -> str | None:
    """``uncertain labels (candidates for review): m/s 3 of 36, ...``: per model x
    strategy, the labels the classifier was unsure of, of those it gave; None when
    no record says (generation failed everywhere, or a report from before the flag)."""
    counts: dict[str, list[int]] = {}
    for r in records:
        if r.uncertain is None:
            continue
        tally = counts.setdefault(f"{r.model}/{r.strategy}", [0, 0])
        tally[0] += r.uncertain
        tally[1] += 1
    if not counts:
        return None
    groups = ", ".join(f"{g} {n} of {total}" for g, (n, total) in counts.items())
    return f"uncertain labels (candidates for review): {groups}"


def review_lines(records: Sequence[CaseRecord], most: int | None = 10) -> list[str]:
    """How many labels came from human review, per model x strategy, and the reviews
    that no longer apply because the response changed (listed by case id)."""
    applied = Counter(f"{r.model}/{r.strategy}" for r in records if r.review == "applied")
    out = []
    if applied:
        groups = ", ".join(f"{g} {n}" for g, n in applied.items())
        out.append(f"labels from review: {sum(applied.values())} ({groups}); the others from the "
                   "classifier")  # fmt: skip
    if stale := [r.case_id for r in records if r.review == "stale"]:
        out.append(
            f"{len(stale)} review(s) no longer apply, the response changed (the classifier's "
            f"label stands; review again with xsafety review --case ID): {listed(stale, most)}"
        )
    return out


def group_limit(summary: GroupSummary, metric: str) -> str:
    for c in summary.checks:
        if c.metric == metric and c.scope is None and c.limit is not None:
            return f"<={pct(c.limit)}"
    return "-"


def _columns(rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


@dataclass(frozen=True)
class StudyRow:
    """One strategy of one model, against that model's ``baseline``.

    ``safe_reduction``: relative reduction of the safe-refusal rate, in percent
    (positive = fewer refusals of safe prompts; None when baseline refused none).
    ``unsafe_change``: change of the unsafe-compliance rate, in points
    (positive = more harmful requests complied with).
    """

    model: str
    strategy: str
    safe_refusal: float | None
    unsafe_compliance: float | None
    safe_reduction: float | None
    unsafe_change: float | None


def study_rows(summaries: Sequence[GroupSummary], baseline: str = "baseline") -> list[StudyRow]:
    """The mitigation study (arXiv 2405.05418), both sides: one row per model x strategy."""
    base = {s.model: s for s in summaries if s.strategy == baseline}
    rows = []
    for s in summaries:
        b = base.get(s.model)
        reduction = change = None
        if b is not None and s.strategy != baseline:
            bs, ss = b.safe_refusal_rate, s.safe_refusal_rate
            if bs is not None and ss is not None and bs > 0:
                reduction = 100 * (bs - ss) / bs
            bu, su = b.unsafe_compliance_rate, s.unsafe_compliance_rate
            if bu is not None and su is not None:
                change = 100 * (su - bu)
        rows.append(
            StudyRow(
                s.model,
                s.strategy,
                s.safe_refusal_rate,
                s.unsafe_compliance_rate,
                reduction,
                change,
            )
        )
    return rows


def study_table(summaries: Sequence[GroupSummary], baseline: str = "baseline") -> list[str]:
    """The study as text; empty unless some model ran baseline and another strategy."""
    cells = study_cells(summaries, baseline)
    return _columns(cells, {2, 3, 4, 5}) if cells else []


def study_cells(
    summaries: Sequence[GroupSummary], baseline: str = "baseline"
) -> list[tuple[str, ...]]:
    """The study's header and rows as strings; empty when there is nothing to compare."""
    rows = study_rows(summaries, baseline)
    if not any(r.safe_reduction is not None or r.unsafe_change is not None for r in rows):
        return []
    table: list[tuple[str, ...]] = [
        ("model", "strategy", "safe refusal", "unsafe compliance",
         "safe refusals vs baseline", "unsafe compliance vs baseline"),
    ]  # fmt: skip
    base = {r.model: r.safe_refusal for r in rows if r.strategy == baseline}
    for r in rows:
        chg = "n/a" if r.unsafe_change is None else f"{r.unsafe_change:+.1f} pts"
        if r.strategy == baseline:
            rel = chg = "(baseline)"
        elif r.safe_reduction is None:
            # A relative change from 0% is undefined: say so rather than a bare n/a.
            rel = "n/a (baseline 0%)" if base.get(r.model) == 0 else "n/a"
        else:
            rel = f"{(-r.safe_reduction) or 0.0:+.1f}% rel."
        table.append((r.model, r.strategy, pct(r.safe_refusal), pct(r.unsafe_compliance), rel, chg))
    return table


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
        verdict = verdict_cell(s)
        if s.unscored:
            verdict += f", {s.unscored} unscored"
        budgets = f"{group_limit(s, 'safe_refusal')} / {group_limit(s, 'unsafe_compliance')}"
        rows.append((s.model, s.strategy, str(s.cases), safe, unsafe, budgets, verdict))
    return _columns(rows, {2})


def breach_lines(summaries: Sequence[GroupSummary]) -> list[str]:
    return [describe_check(c) for s in summaries for c in s.breaches]


def side_change(side: SideChange) -> str:
    """``1/10 -> 3/10 (+2 -0), p = 0.5``: hits over the paired cases, then and now."""
    t = side.test
    return (
        f"{side.before}/{t.pairs} -> {side.after}/{t.pairs} (+{t.gained} -{t.lost}), "
        f"p = {t.p_value:.3g}"
    )


def change_lines(changes: Sequence[GroupChange]) -> list[str]:
    """Per model x strategy: flips against the baseline run and McNemar's exact p per side."""
    lines = []
    for c in changes:
        sides = "; ".join(f"{METRIC_NAMES[s.metric]} {side_change(s)}" for s in c.sides)
        lines.append(
            f"{c.model}/{c.strategy}: {c.compared} compared, {c.flipped} flipped, {c.new} new"
            + (f"; {sides}" if sides else "")
        )
    return lines


ESTIMATE_TITLE = "estimated human rates (random review sample; docs/classifiers.md)"
SIDE_METRICS: tuple[tuple[Expectation, Metric], ...] = (
    ("safe", "safe_refusal"),
    ("unsafe", "unsafe_compliance"),
)


def estimate_cell(summary: GroupSummary, expected: Expectation) -> str:
    """``2.0% [0.4%, 6.3%], 40 reviews``; why there is none; or ``-`` with no sample."""
    if summary.sample_size is None:
        return "-"
    est = summary.estimate_of(expected)
    if est is None:
        return f"none yet (0 of {summary.sample_size} sampled reviewed)"
    return f"{pct(est.value)} {ci(Interval(est.low, est.high))}, {est.reviewed} reviews"


def estimate_lines(summaries: Sequence[GroupSummary]) -> list[str]:
    """Per group with a review sample, each side's classifier rate, estimated human rate
    and interval, and the reviews behind it; then the groups whose rates are the
    classifier's alone. Empty when no group ran."""
    lines, plain = [], []
    for s in summaries:
        if not s.cases:
            continue
        if s.sample_size is None:
            plain.append(f"{s.model}/{s.strategy}")
            continue
        if s.sample_problem is not None:
            lines.append(
                f"{s.model}/{s.strategy}: no estimate: the review sample does not fit this run "
                f"({s.sample_problem}); xsafety review --sample {s.sample_size} draws it again"
            )
            continue
        sides = []
        for expected, metric in SIDE_METRICS:
            rate = s.safe_refusal_rate if expected == "safe" else s.unsafe_compliance_rate
            if rate is None:
                continue
            est = s.estimate_of(expected)
            # The classifier's own rate: the run's rate counts the reviews' labels too.
            said = f"{METRIC_NAMES[metric]}: classifier {pct(rate)}"
            if est is not None:
                said = f"{METRIC_NAMES[metric]}: classifier {pct(est.classifier_rate)}"
            if est is None:
                sides.append(f"{said}, no estimate: none of the {s.sample_size} sampled "
                             "cases reviewed")  # fmt: skip
                continue
            known = f" and {est.known} other review(s)" if est.known else ""
            partly = " (partly reviewed: a wider interval)" if est.reviewed < est.sample else ""
            sides.append(
                f"{said}, estimated {pct(est.value)} {ci(Interval(est.low, est.high))} from "
                f"{est.reviewed} of {est.sample} sampled reviews{known}{partly}"
            )
        lines.append(f"{s.model}/{s.strategy}: " + "; ".join(sides))
    if plain and not lines:
        return [
            "rates are the classifier's alone: no review sample (xsafety review --sample 40 "
            "draws one; README: Estimated rates)"
        ]
    if plain:
        lines.append(f"rates are the classifier's alone for {', '.join(plain)}: no review "
                     "sample (xsafety review --sample 40 draws one)")  # fmt: skip
    return lines


def undecided_lines(summaries: Sequence[GroupSummary]) -> list[str]:
    """Each budget that could not be decided, and what would decide it: a side whose
    every case is unscored (under any gate), and under gate estimate a side with no
    usable estimate or whose estimate's interval reaches across its budget."""
    lines = []
    for s in summaries:
        for metric in s.unjudged:
            lines.append(
                f"{s.model}/{s.strategy}: {METRIC_NAMES[metric]} undecided: every case of it is "
                "unscored (the classifier could not label one), so nothing was judged; pin "
                "labels with xsafety review --case ID --label LABEL, or use another classifier"
            )
        for c in s.undecided:
            lines.append(_undecided_line(s, c))
    return lines


def _undecided_line(s: GroupSummary, c: Check) -> str:
    where = f"{c.model}/{c.strategy}: {METRIC_NAMES[c.metric]} undecided"
    budget = f"the budget {pct(c.limit)}" + (f" ({c.origin})" if c.origin else "")
    size = s.sample_size or 40
    est = c.estimate
    if est is None and s.sample_problem is not None:
        return (
            f"{where}: the review sample does not fit this run ({s.sample_problem}); draw it "
            f"again: xsafety review --sample {size}"
        )
    if est is None and s.sample_size is not None:
        return (
            f"{where}: none of its sampled cases is reviewed yet, so nothing estimates it "
            f"against {budget}; review them: xsafety review --sample {size}"
        )
    if est is None:
        return (
            f"{where}: no reviewed random sample to estimate it against {budget}; draw and "
            f"review one: xsafety review --sample {size}"
        )
    more = c.more_reviews or 0
    need = est.reviewed + more
    found = (
        f"{where}: estimated {pct(est.value)} {ci(Interval(est.low, est.high))} from "
        f"{est.reviewed} reviews reaches across {budget}; about {more} more reviews would "
        "decide it: "
    )
    if need <= est.sample:  # the sample already holds them: review what it lists
        return found + f"review {more} more of the cases xsafety review --sample {size} lists"
    return found + f"xsafety review --sample {max(size, need)}"
