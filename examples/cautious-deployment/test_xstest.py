"""The suite as pytest cases: pytest-xsafety parametrizes ``xsafety_case`` with one
case per model x strategy x prompt (``pytest suites --xsafety-model smollm2``)."""

from __future__ import annotations

from pytest_xsafety.plugin import CaseCheck


def test_xsafety(xsafety_case: CaseCheck) -> None:
    xsafety_case.check()
