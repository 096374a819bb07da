"""``python -m pytest_xsafety``: the ``xsafety`` command (:mod:`pytest_xsafety.cli`)."""

import sys

from pytest_xsafety.cli import main

sys.exit(main())
