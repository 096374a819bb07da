"""pytest-xsafety: LLM safety calibration (XSTest) as a pytest CI gate.

The package is layered, each layer importing only those below it: ``core`` <-
``setup`` <- ``engine`` <- ``snapshots`` <- ``reporting`` <- ``session`` <-
``plugin`` / ``cli`` (see docs/architecture.md). Only ``plugin`` and ``session``
know pytest.
"""

__version__ = "0.1.0"
