"""``pytest --help`` with the plugin installed: it must not crash, in any project."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Every option, spelled out: an option dropped from the code must fail these tests.
FLAGS = [
    "--xsafety-model", "--xsafety-strategy", "--xsafety-suite", "--xsafety-sample",
    "--xsafety-classifier", "--xsafety-judge-model", "--xsafety-thresholds",
    "--xsafety-max-new-tokens", "--xsafety-batch-size", "--xsafety-dtype", "--xsafety-backend",
    "--xsafety-device", "--xsafety-seed", "--xsafety-cache-dir", "--xsafety-no-cache",
    "--xsafety-snapshot-dir", "--xsafety-drift", "--xsafety-snapshot-unsafe", "--xsafety-gate",
    "--xsafety-allow-no-budget", "--xsafety-report", "--xsafety-reviews", "--xsafety-baseline",
    "--xsafety-progress", "--xsafety-report-unsafe",
]  # fmt: skip


def missing(text: str) -> list[str]:
    """Flags not in ``text`` as whole flags (--xsafety-report-unsafe is not --xsafety-report)."""
    return [f for f in FLAGS if not re.search(re.escape(f) + r"(?![\w-])", text)]


def test_the_options_are_these() -> None:
    from pytest_xsafety.setup.options import OPTIONS

    assert [opt.flag for opt in OPTIONS] == FLAGS


def test_pytest_help_lists_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert result.ret == 0
    out = result.stdout.str()
    assert missing(out) == []
    assert "Wilson 95% interval" in " ".join(out.split())  # the % survived argparse


def test_installed_entry_point_help(tmp_path: Path) -> None:
    # A project that never asked for the plugin: the pytest11 entry point loads it anyway.
    (tmp_path / "test_other.py").write_text("def test_x() -> None:\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pytest-xsafety: LLM safety calibration gate" in result.stdout
    assert missing(result.stdout) == []


@pytest.mark.skipif(shutil.which("xsafety") is None, reason="console script not installed")
def test_console_script_help() -> None:
    result = subprocess.run(
        ["xsafety", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "xsafety classify" in result.stdout
    assert "``" not in result.stdout
