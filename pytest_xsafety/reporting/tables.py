"""The per-case and per-type tables (pandas): ``results.csv``, ``types.csv`` and the
``cases`` / ``types`` parts of ``results.json``."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from pytest_xsafety.core.records import CaseRecord, Label
from pytest_xsafety.core.stats import wilson

if TYPE_CHECKING:
    import pandas as pd

    from pytest_xsafety.reporting.model import Report

LABELS = tuple(lbl.value for lbl in Label)


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
        "label_source": r.label_source,
        "review": r.review,
        "classifier_label": None if r.classifier_label is None else r.classifier_label.value,
        "uncertain": r.uncertain,
        "stratum": r.stratum,
        "sampled": r.sampled,
        "request_key": r.request_key,
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
        "pair_id": r.pair_id,
        "pair_outcome": r.pair_outcome,
        "response": None if r.response is None else asdict(r.response),
    }


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
