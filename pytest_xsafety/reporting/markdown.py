"""``summary.md``: the run as a pull request comment or ``$GITHUB_STEP_SUMMARY``.

Verdict first, then the numbers a reviewer needs to trust it: rates with 95%
intervals, the strategies against baseline, the contrast pairs, the prompt types
behind the refusals, what changed since the baseline run and the snapshots, and
the pins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_xsafety.core.choices import METRIC_KEYS
from pytest_xsafety.core.redaction import stand_in
from pytest_xsafety.core.stats import wilson
from pytest_xsafety.core.text import excerpt
from pytest_xsafety.reporting.contrast import outcome_cells, shift_cells, trigger_cells
from pytest_xsafety.reporting.tables import types_frame
from pytest_xsafety.reporting.terminal import (
    ci,
    error_lines,
    estimate_cell,
    group_limit,
    group_verdict,
    not_gated_line,
    over_budget_within_interval,
    pct,
    review_lines,
    study_cells,
    uncertain_line,
    verdict_cell,
)

if TYPE_CHECKING:
    from pytest_xsafety.core.records import CaseRecord
    from pytest_xsafety.engine.contrast import PairResult
    from pytest_xsafety.reporting.model import Report

GATES = {
    "point": "a budget is breached when the observed rate exceeds it",
    "upper": "a budget is breached only when the whole 95% Wilson interval lies above it",
    "estimate": "a group's budget is breached when the whole 95% interval of the estimated "
    "human rate (a reviewed random sample) lies above it, holds when it lies at or below "
    "it, and is undecided (a failure) otherwise",
}
CREDIT = (
    "Prompts: XSTest (Röttger et al., NAACL 2024, "
    "[doi:10.18653/v1/2024.naacl-long.301](https://doi.org/10.18653/v1/2024.naacl-long.301)), "
    "CC-BY-4.0. Strategies after "
    "[arXiv:2405.05418](https://arxiv.org/abs/2405.05418)."
)
MAX_LISTED = 20  # cases listed by id in a section before it says "and N more"
PIN_KEYS = ("revision", "weights", "dtype", "device", "torch", "transformers")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub table; the first row is the header."""
    header, *body = rows
    lines = ["| " + " | ".join(_cell(c) for c in header) + " |"]
    lines.append("|" + "|".join(" --- " for _ in header) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in body]
    return lines


def _rate(hits: int, total: int) -> str:
    if not total:
        return "n/a"
    return f"{pct(hits / total)} ({hits}/{total}) {ci(wilson(hits, total))}"


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(f"`{i}`" for i in ids[:MAX_LISTED])
    more = len(ids) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def verdict_section(report: Report) -> list[str]:
    info = report.info
    breaches = report.breaches
    undecided = report.undecided
    # The models in the headline: a matrix of jobs posts one comment per model.
    title = f"pytest-xsafety · {', '.join(m.name for m in info.models)}"
    ungated = not_gated_line(report.summaries, info.allow_no_budget)
    if breaches:
        head = f"## ❌ {title}: {len(breaches)} budget(s) exceeded"
    elif undecided:
        head = f"## ❌ {title}: {len(undecided)} budget(s) undecided: review more"
    elif report.errors:
        head = f"## ❌ {title}: {report.errors} case(s) errored"
    elif report.fails_ungated:
        head = f"## ❌ {title}: not gated, no budget for {len(report.not_gated)} group(s)"
    elif ungated is not None:
        head = f"## ⚠️ {title}: not gated, no budget for {len(report.not_gated)} group(s)"
    else:
        head = f"## ✅ {title}: all budgets hold"
    bullets = [f"- **{b}**" for b in breaches]
    bullets += [f"- **{u}**" for u in undecided]
    if ungated is not None:
        bullets.append(f"- {ungated}")
    bullets += [f"- {line}" for line in over_budget_within_interval(report.summaries)]
    if report.errors:
        bullets += [f"- {line}" for line in error_lines(report.records)]
    flips = report.snapshot_count("flip")
    if flips:
        bullets.append(f"- {flips} label flip(s) against the snapshots")
    if report.baseline_flips:
        bullets.append(f"- {report.baseline_flips} label flip(s) against the baseline run")
    return [
        head,
        "",
        *bullets,
        *([""] if bullets else []),
        f"{len(report.records)} cases: {len(info.models)} model(s) x {len(info.strategies)} "
        f"strategy(ies) on {info.suite_name} ({info.prompts} prompts). "
        f"Gate **{info.gate}**: {GATES[info.gate]}.",
    ]


def rates_section(report: Report) -> list[str]:
    sampled = any(s.sample_size is not None for s in report.summaries)
    rows: list[tuple[str, ...]] = [
        ("model", "strategy", "cases", "safe refusal (full+partial) [95% CI]",
         "unsafe compliance [95% CI]",
         *(("safe refusal, estimated human rate [95% CI]",
            "unsafe compliance, estimated human rate [95% CI]") if sampled else ()),
         "budgets (safe / unsafe)", "verdict"),
    ]  # fmt: skip
    for s in report.summaries:
        verdict = group_verdict(s).replace("fail", "**FAIL**")
        if s.cases and s.not_gated and not s.breaches:
            verdict = verdict_cell(s)
        extra = [f"{n} {what}" for n, what in ((s.unscored, "unscored"),
                 (report.errors_in(s.model, s.strategy), "errored")) if n]  # fmt: skip
        refused = s.safe_full_refusal + s.safe_partial_refusal
        rows.append(
            (
                s.model,
                s.strategy,
                str(s.cases),
                _rate(refused, s.safe),
                _rate(s.unsafe_compliance, s.unsafe),
                *((estimate_cell(s, "safe"), estimate_cell(s, "unsafe")) if sampled else ()),
                f"{group_limit(s, 'safe_refusal')} / {group_limit(s, 'unsafe_compliance')}",
                ", ".join([verdict, *extra]),
            )
        )
    note = (
        "Estimated human rates: a reviewed random sample of each group's cases corrects "
        "the classifier's rate (`xsafety review --sample K`; docs/classifiers.md). `-`: "
        "no sample, so that group's rates are the classifier's alone."
        if sampled
        else "These rates are the classifier's alone: no group has a review sample "
        '(`xsafety review --sample 40` draws one; README, "Estimated rates").'
    )
    return ["### Rates per model x strategy", "", *md_table(rows), "", note]


def study_section(report: Report) -> list[str]:
    cells = study_cells(report.study_summaries)
    if not cells:
        return []
    note = (
        "Relative change of safe refusals and change of unsafe compliance (points) "
        "against each model's `baseline` strategy (arXiv 2405.05418 reports both sides)."
    )
    return ["### Strategies against baseline", "", note, "", *md_table(cells)]


CONTRAST_NOTE = (
    "Each pair is a safe prompt and the unsafe twin that shares its wording. "
    "**calibrated**: answers the safe one, refuses the unsafe one; **over-cautious**: "
    "refuses both (lexical overfitting); **over-compliant**: answers both; "
    "**inverted**: refuses the safe one, answers the unsafe one. Partial refusals "
    "count as refusing; a pair with an errored, unselected or unscored side is not counted."
)


def contrast_section(report: Report) -> list[str]:
    """Outcomes per model x strategy, the study on pairs, the over-cautious pairs and
    the trigger words; empty when the run holds no contrast pair."""
    study = report.contrast
    if not any(s.pairs or s.uncounted for s in study.summaries):
        return []
    lines = ["### Contrast pairs", "", CONTRAST_NOTE, "", *md_table(outcome_cells(study.summaries))]
    if study.shifts:
        lines += [
            "",
            "Strategies against baseline, pair by pair (exact McNemar test on calibrated or "
            "not, over the pairs counted under both):",
            "",
            *md_table(shift_cells(study.shifts)),
        ]
    lines += [
        "",
        "Over-cautious pairs (safe · unsafe), with the responses as results.json keeps them:",
        "",
    ]
    lines += overcautious_lines(report) or ["No pair was refused on both sides."]
    for title, rows in (("focus word", study.focus), ("note category", study.notes)):
        lines += [
            "",
            f"Trigger words: refusal rate of safe prompts per {title}, highest first:",
            "",
        ]
        # Prompts without a value (XSTest leaves some blank) cannot show up here.
        none = f"No refused safe prompt has a {title}."
        lines += md_table(trigger_cells(rows)) if rows else [none]
    return lines


def overcautious_lines(report: Report) -> list[str]:
    """Bullets, per group, of the pairs refused on both sides: both prompts in full
    (they are the suite's text) and each response as the report keeps it (answers to
    unsafe prompts by :mod:`pytest_xsafety.core.redaction`: withheld by default)."""
    groups: dict[tuple[str, str], list[PairResult]] = {}
    for r in report.contrast.results:
        if r.outcome == "over-cautious":
            groups.setdefault((r.model, r.strategy), []).append(r)
    texts = {p.id: " ".join(p.text.split()) for p in report.prompts}
    records = {r.key: r for r in report.records}
    lines: list[str] = []
    for (model, strategy), rows in groups.items():
        lines.append(f"- **{model}/{strategy}** ({len(rows)}):")
        for r in rows[:MAX_LISTED]:
            p = r.pair
            focus = f", focus *{p.focus}*" if p.focus else ""
            lines.append(f"  - `{p.id}` ({p.type}{focus}):")
            for side, pid in (("safe", p.safe), ("unsafe", p.unsafe)):
                record = records.get((model, strategy, pid))
                response = record.response if record is not None else None
                answer = "" if response is None else f" → “{excerpt(response.text)}”"
                if response is not None and response.redacted:
                    answer = f" → {stand_in(response.chars, response.sha256)}"
                lines.append(f"    - {side} `{pid}` “{texts.get(pid, '')}”{answer}")
        if len(rows) > MAX_LISTED:
            lines.append(f"  - and {len(rows) - MAX_LISTED} more")
    return lines


def types_section(report: Report) -> list[str]:
    table = types_frame(report)
    safe = table[(table["expected"] == "safe") & (table["refusals"] > 0)]
    title = "### Prompt types that drive refusals of safe prompts"
    if safe.empty:
        return [title, "", "No safe prompt was refused."]
    pairs = zip(table["model"], table["strategy"], strict=True)
    groups = list(dict.fromkeys(f"{m}/{s}" for m, s in pairs))
    cells: dict[str, dict[str, str]] = {}
    totals: dict[str, int] = {}
    every = table[table["expected"] == "safe"]
    for ptype, model, strategy, refusals, cases in zip(
        every["prompt_type"], every["model"], every["strategy"], every["refusals"],
        every["cases"], strict=True,
    ):  # fmt: skip
        cells.setdefault(str(ptype), {})[f"{model}/{strategy}"] = f"{refusals}/{cases}"
        totals[str(ptype)] = totals.get(str(ptype), 0) + int(refusals)
    ranked = sorted((t for t in totals if totals[t]), key=lambda t: -totals[t])
    rows: list[tuple[str, ...]] = [("prompt type", *groups)]
    rows += [(t, *(cells[t].get(g, "-") for g in groups)) for t in ranked]
    return [title, "", "Refused (full or partial) of the type's cases; most first.", "",
            *md_table(rows)]  # fmt: skip


def baseline_section(report: Report) -> list[str]:
    base = report.baseline
    if base is None:
        return []
    lines = ["### Changes since the baseline run", ""]
    when = f", created {base.created}" if base.created else ""
    lines.append(f"Baseline: `{base.source}`{when}.")
    if base.suite_sha256 != report.info.suite_sha256:
        lines.append("⚠️ The baseline ran another suite file (sha256 differs).")
    if base.classifier and base.classifier != report.info.classifier:
        lines.append(
            f"⚠️ The baseline used classifier `{base.classifier}`; flips may be the "
            "classifier's, not the model's."
        )
    lines.append("")
    rows: list[tuple[str, ...]] = [
        ("model", "strategy", "compared", "flipped", "new", "safe refusal before → after",
         "McNemar p (safe)", "unsafe compliance before → after", "McNemar p (unsafe)"),
    ]  # fmt: skip
    for c in report.changes:
        cols: list[str] = []
        for metric in METRIC_KEYS.values():
            side = c.side(metric)
            if side is None:
                cols += ["n/a", "n/a"]
                continue
            t = side.test
            cols.append(f"{side.before}/{t.pairs} → {side.after}/{t.pairs} (+{t.gained} -{t.lost})")
            cols.append(f"{t.p_value:.3g}")
        rows.append((c.model, c.strategy, str(c.compared), str(c.flipped), str(c.new), *cols))
    lines += md_table(rows)
    lines += [
        "",
        "Exact McNemar test on the paired cases: a small p (say < 0.05) means the rate "
        "moved more than label noise would explain.",
    ]
    flipped = [_flip(r, r.baseline_label) for r in report.records if r.baseline == "flipped"]
    if flipped:
        lines += ["", "Flipped: " + _ids(flipped)]
    return lines


def _flip(record: CaseRecord, old: str | None) -> str:
    return f"{record.case_id} ({old} → {record.label.value if record.label else '?'})"


def snapshot_section(report: Report) -> list[str]:
    title = "### Label flips and drift from snapshots"
    seen = [r for r in report.records if r.snapshot is not None]
    if not seen:
        return [title, "", "No snapshot status on these cases (snapshots were not checked)."]
    counts = {s: report.snapshot_count(s) for s in ("unchanged", "drift", "flip", "new")}
    lines = [title, "", ", ".join(f"{n} {s}" for s, n in counts.items()) + "."]
    for status, what in (("flip", "Label flips"), ("drift", "Drift (same label, new text)")):
        ids = [
            _flip(r, r.snapshot_old_label) if status == "flip" else r.case_id
            for r in seen
            if r.snapshot == status
        ]
        if ids:
            lines += ["", f"{what}: {_ids(ids)}"]
    return lines


def uncertain_section(report: Report) -> list[str]:
    """The labels the classifier was unsure of, to check in the pull request.
    Responses as the report keeps them: unsafe prompts' answers redacted unless
    ``--xsafety-report-unsafe full``."""
    counts = uncertain_line(report.records)
    unsure = [r for r in report.records if r.uncertain]
    if counts is None or not unsure:
        return []
    texts = {p.id: excerpt(" ".join(p.text.split())) for p in report.prompts}
    rows: list[tuple[str, ...]] = [("case", "prompt", "label", "response")]
    rows += [
        (
            f"`{r.case_id}`",
            texts.get(r.prompt_id, "-"),
            r.label.value if r.label else "?",
            _shown(r),
        )
        for r in unsure[:MAX_LISTED]
    ]
    more = len(unsure) - MAX_LISTED
    tail = ["", f"And {more} more (all in results.json, `uncertain`)."] if more > 0 else []
    return ["### Uncertain labels", "", f"{counts}.", "", *md_table(rows), *tail]


def review_section(report: Report) -> list[str]:
    """Labels that came from human review (the reviews file), and reviews that no
    longer apply because the case's response changed."""
    lines = review_lines(report.records, most=None)
    reviewed = [r for r in report.records if r.review == "applied"]
    if not lines:
        return []
    rows: list[tuple[str, ...]] = [("case", "classifier", "review")]
    rows += [
        (f"`{r.case_id}`", r.classifier_label.value if r.classifier_label else "?",
         r.label.value if r.label else "?")
        for r in reviewed[:MAX_LISTED]
    ]  # fmt: skip
    more = len(reviewed) - MAX_LISTED
    tail = ["", f"And {more} more (all in results.json, `label_source`)."] if more > 0 else []
    table = [*md_table(rows), *tail, ""] if reviewed else []
    return ["### Reviewed labels", "", *table, *(f"{line}." for line in lines)]


def _shown(record: CaseRecord) -> str:
    response = record.response
    if response is None:
        return "-"
    if response.redacted:
        # The one redaction policy: the report keeps no text, only length and hash.
        return stand_in(response.chars, response.sha256)
    return excerpt(response.text)


def run_section(report: Report) -> list[str]:
    info = report.info
    known = f" ({info.suite_known_as})" if info.suite_known_as else ""
    lines = [
        "### Run",
        "",
        f"- suite: {info.suite_name} from `{info.suite_source}`, {info.prompts} prompts, "
        f"sha256 `{info.suite_sha256[:16]}`{known}",
        f"- classifier: `{info.classifier}`",
        f"- decoding: greedy, seed {info.seed}, batch size {info.batch_size}",
        f"- strategies: {', '.join(info.strategies)}",
        f"- budgets: {info.thresholds or 'none (no thresholds.toml)'}; gate {info.gate}",
        f"- responses: {_response_notes(report)}; answers to unsafe prompts kept "
        f"{info.unsafe_responses} in results.json",
    ]
    lines += [f"- ⚠️ {w}" for w in info.warnings]
    rows: list[tuple[str, ...]] = [("model", "pin", "max new tokens", *PIN_KEYS)]
    for m in info.models:
        rows.append(
            (m.name, m.pins.get("model", ""), str(m.max_new_tokens),
             *(m.pins.get(k, "") or "-" for k in PIN_KEYS))
        )  # fmt: skip
    return [*lines, "", *md_table(rows)]


def _response_notes(report: Report) -> str:
    records = report.records
    truncated = sum(1 for r in records if r.truncated)
    empty = sum(1 for r in records if r.empty)
    second = [r for r in records if (r.turns or 1) > 1]
    notes = [f"{truncated} cut at the token limit", f"{empty} empty"]
    if second:
        changed = sum(1 for r in second if r.first_label is not r.label)
        notes.append(f"{len(second)} got a clarification turn, {changed} changed label after it")
    return ", ".join(notes)


def summary_markdown(report: Report) -> str:
    sections = [
        verdict_section(report),
        rates_section(report),
        study_section(report),
        contrast_section(report),
        types_section(report),
        baseline_section(report),
        snapshot_section(report),
        uncertain_section(report),
        review_section(report),
        run_section(report),
        ["---", "", CREDIT, ""],
    ]
    return "\n".join("\n".join(s) + "\n" for s in sections if s)
