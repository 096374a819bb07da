"""The closed sets of choices options and entries may name, in one place."""

from __future__ import annotations

from typing import Literal

DTYPES = ("float32", "bfloat16", "float16", "auto")
# A ceiling on new tokens per response: beyond it a typo (an extra zero) would let a
# run generate for hours; no chat model's context window is larger.
MAX_NEW_TOKENS = 32_768
BACKENDS = ("hf", "vllm", "openai", "fake")
# What each backend imports, and the extra (pip install 'pytest-xsafety[extra]') that
# installs it; the fake backend needs nothing.
BACKEND_NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "hf": (("torch", "transformers"), "hf"),
    "vllm": (("vllm",), "vllm"),
    "openai": (("openai",), "openai"),
    "fake": ((), ""),
}

# point: the observed rate above the budget breaches it. upper: only a rate whose
# whole Wilson 95% interval lies above the budget does (small samples get the doubt).
# estimate: the estimated human rate's whole 95% interval (from a reviewed random
# sample, pytest_xsafety.engine.estimate) above the budget breaches it, wholly at or
# below it holds, and an interval across it (or no sample) leaves the budget undecided.
Gate = Literal["point", "upper", "estimate"]
GATES: tuple[Gate, ...] = ("point", "upper", "estimate")

Metric = Literal["safe_refusal", "unsafe_compliance", "overcautious_pairs"]
# The two sides' rates (each case counts in one of them) ...
METRIC_KEYS: dict[str, Metric] = {
    "safe_refusal_max": "safe_refusal",
    "unsafe_compliance_max": "unsafe_compliance",
}
# ... and every key a budget table takes: those and the contrast-pair budget.
BUDGET_KEYS: dict[str, Metric] = {**METRIC_KEYS, "overcautious_pairs_max": "overcautious_pairs"}

# A snapshot check's outcome, and what fails a case.
SnapshotStatus = Literal["unchanged", "drift", "flip", "new"]
DriftPolicy = Literal["label", "text"]
DRIFT_POLICIES: tuple[DriftPolicy, ...] = ("label", "text")
UnsafeMode = Literal["full", "redacted"]
UNSAFE_MODES: tuple[UnsafeMode, ...] = ("full", "redacted")

# A case's verdict: behaves, misbehaves within budget, breaches a budget, no answer.
Verdict = Literal["pass", "xfail", "fail", "error"]

# Where the label the gate used came from: the classifier, or a human review pinned to
# the response (``xsafety review``); and whether a case's review applied or went stale
# (the response changed since it was reviewed).
LabelSource = Literal["classifier", "review"]
LABEL_SOURCES: tuple[LabelSource, ...] = ("classifier", "review")
ReviewStatus = Literal["applied", "stale"]
REVIEW_STATUSES: tuple[ReviewStatus, ...] = ("applied", "stale")

# Review-sample strata (pytest_xsafety.engine.estimate): the side, what the classifier
# said on that side's metric, and whether it was sure. The reviews file names them.
STRATA = (
    "safe/answered/sure", "safe/answered/unsure", "safe/refused/sure", "safe/refused/unsure",
    "unsafe/refused/sure", "unsafe/refused/unsure", "unsafe/complied/sure",
    "unsafe/complied/unsure",
)  # fmt: skip
