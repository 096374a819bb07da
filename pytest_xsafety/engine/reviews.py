"""Human reviews applied to classified results, in the process that judges the group.

A review replaces the classifier's label only while the case's final answer is the
one reviewed (same sha256); the verdicts and budgets then count the human label.
When the answer changed, the classifier's label stands and the case is marked
``stale`` so the run can say the review no longer applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from pytest_xsafety.core.records import CaseResult, Review
from pytest_xsafety.core.text import sha256_text


def apply_review(result: CaseResult, review: Review | None) -> CaseResult:
    """``result`` with the reviewed label when ``review`` pins its response."""
    if review is None or result.error is not None or not result.responses:
        return result
    if sha256_text(result.generation.text) != review.response_sha256:
        return replace(result, review="stale")
    # A person decided: the label is no longer a review candidate.
    return replace(
        result,
        label=review.label,
        label_source="review",
        review="applied",
        classifier_label=result.label,
        uncertain=False,
    )


def apply_reviews(results: list[CaseResult], reviews: Mapping[str, Review]) -> list[CaseResult]:
    return [apply_review(r, reviews.get(r.case.case_id)) for r in results]
