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


def _commands(text: str) -> list[str]:
    """The lines of ``text`` that run pytest or set a suite (code, not prose)."""
    return [line for line in text.splitlines() if "--xsafety-suite" in line]


def test_commands_give_the_suite_with_an_equals_sign() -> None:
    # `--xsafety-suite PATH` counts PATH as a path to test when pytest picks the rootdir
    # (README, Options): every command CI runs or the README shows uses the = form.
    texts = {
        ".ci/run": (ROOT / ".ci" / "run").read_text(),
        "ci.yml": (WORKFLOWS / "ci.yml").read_text(),
        "gpu.yml": GPU,
        "docs/reproduce.md": (ROOT / "docs" / "reproduce.md").read_text(),
    }
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", README, flags=re.S | re.M)
    texts["README code"] = "\n".join(blocks)
    for name, text in texts.items():
        lines = _commands(text)
        assert lines, name
        spaced = [line for line in lines if re.search(r"--xsafety-suite [^|]", line)]
        assert not spaced, (name, spaced)
