"""The GitHub workflows use only options that exist, and the README documents the GPU one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_xsafety.setup.options import OPTIONS

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
GPU = (WORKFLOWS / "gpu.yml").read_text()
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", ["ci.yml", "gpu.yml"])
def test_workflows_use_known_options(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    known = {o.flag for o in OPTIONS}
    used = set(re.findall(r"--xsafety-[a-z-]+", text))
    assert used
    assert used <= known, used - known


def test_gpu_workflow_runs_on_the_documented_runners_and_gates() -> None:
    labels = "[self-hosted, linux, gpu]"
    assert f"runs-on: {labels}" in GPU
    assert f"`{labels}`" in README
    for needle in (
        "matrix:",
        "actions/cache@v4",  # hub models and the response cache
        "HF_HOME",
        "responses",
        "actions/upload-artifact@v4",
        'cat "report/${{ matrix.model }}/summary.md" >> "$GITHUB_STEP_SUMMARY"',
        "marocchino/sticky-pull-request-comment@v2",
        "--xsafety-baseline",
        'xsafety verdict "../report/${{ matrix.model }}/results.json"',
    ):
        assert needle in GPU, needle
