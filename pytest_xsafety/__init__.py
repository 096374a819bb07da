"""pytest-xsafety: LLM safety calibration (XSTest) as a pytest CI gate.

The package is split by pipeline stage: suites -> strategies -> backends/generate
-> classify -> budgets -> report. Only ``plugin`` knows pytest.
"""

__version__ = "0.1.0"
