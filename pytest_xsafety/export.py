"""Report files: ``results.json`` (versioned schema), ``results.csv``, ``types.csv``,
``summary.md`` and PNG plots, built from the per-case records of one run.

Nothing here knows pytest: the plugin collects :class:`CaseRecord` s on the
controller, summarises them with the run's budgets and gate, and calls
:func:`write_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_xsafety import __version__
from pytest_xsafety.budgets import Check, GroupSummary
from pytest_xsafety.compare import SCHEMA_VERSION, Baseline, GroupChange, compare, mark
from pytest_xsafety.outputs import write_together
from pytest_xsafety.records import Label
from pytest_xsafety.report import (
    breach_lines,
    group_verdict,
    over_budget_within_interval,
    study_rows,
)
from pytest_xsafety.results import CaseRecord, RunInfo
from pytest_xsafety.stats import wilson

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_FILE = Path(__file__).with_name("schemas") / f"results-v{SCHEMA_VERSION}.schema.json"
SCHEMA_ID = f"urn:pytest-xsafety:results:v{SCHEMA_VERSION}"
FILES = (
    "summary.md",
    "results.json",
    "results.csv",
    "types.csv",
    "refusal-heatmap.png",
    "tradeoff.png",
)
LABELS = tuple(lbl.value for lbl in Label)


@dataclass(frozen=True)
class Report:
    """Everything the files show. ``records`` carry baseline marks when a baseline is set."""

    info: RunInfo
    records: tuple[CaseRecord, ...]
    summaries: tuple[GroupSummary, ...]
    baseline: Baseline | None = None
    changes: tuple[GroupChange, ...] = field(default_factory=tuple)

    @property
    def breaches(self) -> list[str]:
        return breach_lines(self.summaries)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.records if r.label is None)

    @property
    def passed(self) -> bool:
        return not self.breaches and not self.errors

    def snapshot_count(self, status: str) -> int:
        return sum(1 for r in self.records if r.snapshot == status)

    @property
    def baseline_flips(self) -> int | None:
        if self.baseline is None:
            return None
        return sum(1 for r in self.records if r.baseline == "flipped")

    def errors_in(self, model: str, strategy: str) -> int:
        group = (model, strategy)
        return sum(1 for r in self.records if (r.model, r.strategy) == group and r.label is None)


def build_report(
    info: RunInfo,
    records: Sequence[CaseRecord],
    summaries: Sequence[GroupSummary],
    baseline: Baseline | None = None,
) -> Report:
    marked = mark(records, baseline) if baseline is not None else list(records)
    changes = compare(marked, baseline) if baseline is not None else []
    return Report(info, tuple(marked), tuple(summaries), baseline, tuple(changes))


# -- results.json ---------------------------------------------------------------------


def rate_json(hits: int, total: int) -> dict[str, Any]:
    interval = wilson(hits, total)
    return {
        "hits": hits,
        "total": total,
        "rate": hits / total if total else None,
        "low": interval.low if interval else None,
        "high": interval.high if interval else None,
    }


def _check_json(c: Check) -> dict[str, Any]:
    return {
        "metric": c.metric,
        "scope": c.scope,
        **rate_json(c.hits, c.total),
        "limit": c.limit,
        "over_budget": c.over_budget,
        "breached": c.breached,
        "prompt_ids": list(c.ids),
    }


def case_json(r: CaseRecord) -> dict[str, Any]:
    return {
        "case_id": r.case_id,
        "model": r.model,
        "strategy": r.strategy,
        "prompt_id": r.prompt_id,
        "prompt_type": r.prompt_type,
        "expected": r.expected,
        "classifier": r.classifier,
        "label": None if r.label is None else r.label.value,
        "verdict": r.verdict,
        "turns": r.turns,
        "first_label": None if r.first_label is None else r.first_label.value,
        "truncated": r.truncated,
        "empty": r.empty,
        "error": r.error,
        "snapshot": r.snapshot,
        "snapshot_old_label": r.snapshot_old_label,
        "baseline": r.baseline,
        "baseline_label": r.baseline_label,
        "response": None if r.response is None else asdict(r.response),
    }


def _change_json(c: GroupChange) -> dict[str, Any]:
    return {
        "model": c.model,
        "strategy": c.strategy,
        "compared": c.compared,
        "flipped": c.flipped,
        "new": c.new,
        "sides": [
            {
                "metric": s.metric,
                "pairs": s.pairs,
                "before": s.before,
                "after": s.after,
                "gained": s.test.gained,
                "lost": s.test.lost,
                "p_value": s.test.p_value,
            }
            for s in c.sides
        ],
    }


def results_json(report: Report) -> dict[str, Any]:
    """The ``results.json`` document; its schema is ``schemas/results-v1.schema.json``."""
    info = report.info
    return {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "generator": {"name": "pytest-xsafety", "version": __version__},
        "created": info.created,
        "gate": info.gate,
        "verdict": {
            "passed": report.passed,
            "breaches": report.breaches,
            "over_budget_within_interval": over_budget_within_interval(report.summaries),
            "errors": report.errors,
            "unscored": sum(s.unscored for s in report.summaries),
            "snapshot_flips": report.snapshot_count("flip"),
            "snapshot_drift": report.snapshot_count("drift"),
            "baseline_flips": report.baseline_flips,
        },
        "suite": {
            "name": info.suite_name,
            "source": info.suite_source,
            "sha256": info.suite_sha256,
            "known_as": info.suite_known_as,
            "prompts": info.prompts,
        },
        "classifier": info.classifier,
        "thresholds": info.thresholds,
        "strategies": list(info.strategies),
        "models": [
            {"name": m.name, "max_new_tokens": m.max_new_tokens, "pins": dict(m.pins)}
            for m in info.models
        ],
        "decoding": {"greedy": True, "seed": info.seed, "batch_size": info.batch_size},
        "unsafe_responses": info.unsafe_responses,
        "warnings": list(info.warnings),
        "groups": [
            {
                "model": s.model,
                "strategy": s.strategy,
                "cases": s.cases,
                "errors": report.errors_in(s.model, s.strategy),
                "unscored": s.unscored,
                "safe_full_refusal": s.safe_full_refusal,
                "safe_partial_refusal": s.safe_partial_refusal,
                "safe_refusal": rate_json(s.safe_full_refusal + s.safe_partial_refusal, s.safe),
                "unsafe_compliance": rate_json(s.unsafe_compliance, s.unsafe),
                "verdict": group_verdict(s),
                "checks": [_check_json(c) for c in s.checks],
            }
            for s in report.summaries
        ],
        "study": [
            {
                "model": r.model,
                "strategy": r.strategy,
                "safe_refusal": r.safe_refusal,
                "unsafe_compliance": r.unsafe_compliance,
                "safe_refusal_reduction_pct": r.safe_reduction,
                "unsafe_compliance_change_pts": r.unsafe_change,
            }
            for r in study_rows(report.summaries)
        ],
        "types": records_of(types_frame(report)),
        "baseline": None
        if report.baseline is None
        else {
            "source": report.baseline.source,
            "created": report.baseline.created,
            "classifier": report.baseline.classifier,
            "same_suite": report.baseline.suite_sha256 == info.suite_sha256,
            "groups": [_change_json(c) for c in report.changes],
        },
        "cases": [case_json(r) for r in report.records],
    }


# -- tables (pandas) ------------------------------------------------------------------


def cases_frame(report: Report) -> pd.DataFrame:
    """One row per case: ``results.csv`` (the response flattened into three columns)."""
    import pandas as pd

    rows = []
    for r in report.records:
        row = case_json(r)
        response = row.pop("response") or {}
        row["response_sha256"] = response.get("sha256")
        row["response_redacted"] = response.get("redacted")
        row["response"] = response.get("text")
        rows.append(row)
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


CSV_COLUMNS = [
    *(k for k in case_json(CaseRecord("", "", "", "", "safe", "", "")) if k != "response"),
    "response_sha256",
    "response_redacted",
    "response",
]


def types_frame(report: Report) -> pd.DataFrame:
    """Per model x strategy x prompt type: label counts and the refusal rate with its
    Wilson interval (``types.csv``). Rows: safe types, then unsafe, in suite order."""
    import pandas as pd

    cases = cases_frame(report)
    keys = ["model", "strategy", "prompt_type", "expected"]
    columns = [*keys, "cases", *LABELS, "errors", "refusals", "refusal_rate"]
    columns += ["refusal_low", "refusal_high"]
    if cases.empty:
        return pd.DataFrame(columns=columns)
    cases["label"] = cases["label"].fillna("errors")
    counts = (
        pd.crosstab([cases[k] for k in keys], cases["label"])
        .reindex(columns=[*LABELS, "errors"], fill_value=0)
        .reset_index()
    )
    counts["cases"] = counts[[*LABELS, "errors"]].sum(axis=1)
    counts["refusals"] = counts["full_refusal"] + counts["partial_refusal"]
    scored = counts["cases"] - counts["errors"] - counts["unscored"]
    counts["refusal_rate"] = (counts["refusals"] / scored).where(scored > 0)
    intervals = [wilson(int(h), int(n)) for h, n in zip(counts["refusals"], scored, strict=True)]
    counts["refusal_low"] = [i.low if i else None for i in intervals]
    counts["refusal_high"] = [i.high if i else None for i in intervals]
    # First-seen order of each key, safe before unsafe.
    order = {k: {v: i for i, v in enumerate(dict.fromkeys(cases[k]))} for k in keys}
    order["expected"] = {"safe": 0, "unsafe": 1}
    sort_keys = ["expected", "prompt_type", "model", "strategy"]
    counts = counts.sort_values(
        sort_keys, key=lambda col: col.map(order[str(col.name)]), kind="stable"
    )
    return counts[columns].reset_index(drop=True)


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts, missing values as None (JSON has no NaN)."""
    clean = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in clean.to_dict(orient="records")]


# -- writing --------------------------------------------------------------------------


def write_report(report: Report, directory: Path) -> list[Path]:
    """Write every report file into ``directory`` (created), as one set: an
    interruption leaves the previous run's files whole. Returns their paths."""
    import json

    from pytest_xsafety.markdown import summary_markdown
    from pytest_xsafety.plots import refusal_heatmap, tradeoff_plot

    def write(tmp: Path) -> list[str]:
        summary, results, csv, types, heatmap, tradeoff = (tmp / name for name in FILES)
        summary.write_text(summary_markdown(report), encoding="utf-8")
        document = results_json(report)
        text = json.dumps(document, indent=2, allow_nan=False) + "\n"
        results.write_text(text, encoding="utf-8")
        cases_frame(report).to_csv(csv, index=False)
        table = types_frame(report)
        table.to_csv(types, index=False)
        refusal_heatmap(table, heatmap)
        tradeoff_plot(report.summaries, tradeoff)
        return list(FILES)

    return write_together(directory, write)
