"""benchmarks/gpu.py, the GPU benchmark, run here with its tiny shape on the CPU.

The GPU machine has no syrupy, gguf or vllm: the script runs with those imports
blocked, as it will there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_suite

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("syrupy", "gguf", "vllm", "pandas")


@pytest.mark.slow  # a subprocess that builds and runs a model
def test_tiny_run_reports_speed_bound_and_batch_dependence(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    suite = write_suite(tmp_path / "suite.csv")
    code = (
        "import runpy, sys\n"
        f"for name in {BLOCKED!r}: sys.modules[name] = None  # absent, as on the GPU machine\n"
        "runpy.run_path('benchmarks/gpu.py', run_name='__main__')\n"
    )
    args = ["--tiny", "--suite", str(suite), "--max-new-tokens", "8", "--default-batch", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "tiny shape" in out
    assert "6 prompts x 8 new tokens, greedy" in out
    # Batch sizes from the default, doubled, up to the whole suite of 6 prompts.
    assert [line.split(" s ")[0].split()[2] for line in out.splitlines() if "trial" in line] == [
        "2",
        "4",
        "6",
    ]
    assert "hf, batch 2 (default)" in out
    assert "hf, batch 6 (largest)" in out
    assert "of the weight-bandwidth bound" in out
    # fp32 on a CPU: greedy output does not depend on the batch.
    assert "greedy output, batch 2 vs 6: 0/6 responses differ" in out
    assert "batch 1 vs 2: 0/6 responses differ" in out
    assert "vllm: not importable here" in out
