"""Report files: ``results.json`` (versioned schema), ``results.csv``, ``types.csv``,
``summary.md`` and PNG plots, built from the per-case records of one run.

Every file renders the one :class:`~pytest_xsafety.reporting.model.Report`;
nothing here knows pytest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_xsafety import __version__
from pytest_xsafety.core.secrets import scrub
from pytest_xsafety.core.stats import wilson
from pytest_xsafety.engine.budgets import Check, GroupSummary
from pytest_xsafety.engine.estimate import Estimate
from pytest_xsafety.reporting.compare import SCHEMA_ID, SCHEMA_VERSION, GroupChange
from pytest_xsafety.reporting.model import Report
from pytest_xsafety.reporting.tables import case_json, cases_frame, records_of, types_frame
from pytest_xsafety.reporting.terminal import group_verdict, over_budget_within_interval, study_rows
from pytest_xsafety.setup.outputs import write_together

SCHEMA_FILE = Path(__file__).parents[1] / "schemas" / f"results-v{SCHEMA_VERSION}.schema.json"
FILES = (
    "summary.md",
    "results.json",
    "results.csv",
    "types.csv",
    "refusal-heatmap.png",
    "tradeoff.png",
    "contrast-pairs.png",
)


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
        "decision": c.decision,
        "more_reviews": c.more_reviews,
        "prompt_ids": list(c.ids),
    }


def estimate_json(e: Estimate | None) -> dict[str, Any] | None:
    """An estimated human rate: value and interval as fractions, the reviews behind it."""
    if e is None:
        return None
    return {
        "value": e.value,
        "low": e.low,
        "high": e.high,
        "classifier_rate": e.classifier_rate,
        "cases": e.cases,
        "reviewed": e.reviewed,
        "sample": e.sample,
        "other_reviews": e.known,
        "method": e.method,
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


def _verdict_json(report: Report) -> dict[str, Any]:
    return {
        "passed": report.passed,
        "breaches": report.breaches,
        "undecided": report.undecided,
        "over_budget_within_interval": over_budget_within_interval(report.summaries),
        "errors": report.errors,
        "unscored": sum(s.unscored for s in report.summaries),
        "snapshot_flips": report.snapshot_count("flip"),
        "snapshot_drift": report.snapshot_count("drift"),
        "baseline_flips": report.baseline_flips,
        "not_gated": report.not_gated,
        "allow_no_budget": report.info.allow_no_budget,
    }


def _group_json(report: Report, s: GroupSummary) -> dict[str, Any]:
    return {
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
        "not_gated": list(s.not_gated),
        "review_sample": s.sample_size,
        "estimate": {
            "safe_refusal": estimate_json(s.estimate_of("safe")),
            "unsafe_compliance": estimate_json(s.estimate_of("unsafe")),
        },
        "checks": [_check_json(c) for c in s.checks],
        "pairs": _pairs_json(report, s),
    }


def _pairs_json(report: Report, s: GroupSummary) -> dict[str, int] | None:
    """The group's contrast-pair outcomes; None when the run holds no pair."""
    if not report.contrast.summaries:
        return None
    found = [p for p in report.contrast.summaries if (p.model, p.strategy) == (s.model, s.strategy)]
    if not found:
        return None
    p = found[0]
    return {
        "pairs": p.pairs,
        "calibrated": p.calibrated,
        "over_cautious": p.over_cautious,
        "over_compliant": p.over_compliant,
        "inverted": p.inverted,
        "uncounted": p.uncounted,
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
        "verdict": _verdict_json(report),
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
        "reviews": info.reviews or None,
        "warnings": list(info.warnings),
        "groups": [_group_json(report, s) for s in report.summaries],
        "study": [
            {
                "model": r.model,
                "strategy": r.strategy,
                "safe_refusal": r.safe_refusal,
                "unsafe_compliance": r.unsafe_compliance,
                "safe_refusal_reduction_pct": r.safe_reduction,
                "unsafe_compliance_change_pts": r.unsafe_change,
            }
            for r in study_rows(report.study_summaries)
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


# -- writing --------------------------------------------------------------------------


def write_report(report: Report, directory: Path) -> list[Path]:
    """Write every report file into ``directory`` (created), as one set: an
    interruption leaves the previous run's files whole. Returns their paths."""
    import json

    from pytest_xsafety.reporting.markdown import summary_markdown
    from pytest_xsafety.reporting.plots import pair_outcome_plot, refusal_heatmap, tradeoff_plot

    def write(tmp: Path) -> list[str]:
        summary, results, csv, types, heatmap, tradeoff, pairs = (tmp / name for name in FILES)
        # Every text file scrubbed of secrets as a whole (errors, warnings, answers).
        summary.write_text(scrub(summary_markdown(report)), encoding="utf-8")
        document = results_json(report)
        text = json.dumps(document, indent=2, allow_nan=False) + "\n"
        results.write_text(scrub(text), encoding="utf-8")
        csv.write_text(scrub(cases_frame(report).to_csv(index=False)), encoding="utf-8")
        table = types_frame(report)
        types.write_text(scrub(table.to_csv(index=False)), encoding="utf-8")
        refusal_heatmap(table, heatmap, report.summaries)
        tradeoff_plot(report.summaries, tradeoff)
        pair_outcome_plot(report.contrast.summaries, pairs)
        return list(FILES)

    return write_together(directory, write)
