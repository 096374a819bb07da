"""benchmarks/gpu.py, the GPU benchmark, and benchmarks/gpu_gate.py, the GPU
workflow's command end to end, run here with their tiny shape on the CPU.

The GPU machine has no syrupy, gguf or vllm: gpu.py runs with those imports
blocked, as it will there. gpu_gate.py runs the plugin, which needs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# -- benchmarks/gpu_gate.py: the workflow's command, run four times ---------------------

WORKFLOW_COMMAND = (
    'pytest suites -p no:cacheprovider --xsafety-model "${{ matrix.model }}" '
    '--xsafety-strategy "$XSAFETY_STRATEGIES" '
    "--xsafety-suite=../shared/data/xstest/xstest_prompts.csv --xsafety-device cuda "
    '--xsafety-cache-dir "$XSAFETY_CACHE_DIR" --xsafety-report "../report/${{ matrix.model }}" '
    '--junitxml "../report/${{ matrix.model }}/junit.xml" "${baseline[@]}"'
)


def test_the_gate_reads_the_workflows_own_step() -> None:
    from benchmarks.gpu_gate import WORKFLOW, gate_step

    text = WORKFLOW.read_text()
    step = gate_step(text)
    assert step.command == WORKFLOW_COMMAND
    assert step.working_directory == "pytest-xsafety"
    assert step.env["XSAFETY_STRATEGIES"] == "baseline,helpful,guardrail,few-shot,contextual"
    # The indentation reader agrees with a YAML parser on the whole step and env.
    yaml: Any = pytest.importorskip("yaml")
    workflow = yaml.safe_load(text)
    (parsed,) = [s for s in workflow["jobs"]["xstest"]["steps"] if s.get("id") == "gate"]
    assert step.script == parsed["run"]
    assert step.working_directory == parsed["working-directory"]
    assert dict(step.env) == workflow["env"]


def test_the_gate_changes_only_the_model_and_device_of_the_command() -> None:
    from benchmarks.gpu_gate import WORKFLOW, GateStep, gate_step, step_script

    step = gate_step(WORKFLOW.read_text())
    on_gpu = step_script(step, "cuda")
    assert "${{" not in on_gpu
    assert '--xsafety-model "llama2-shape"' in on_gpu
    assert on_gpu.replace("llama2-shape", "${{ matrix.model }}") == step.script
    on_cpu = step_script(step, "cpu")
    assert on_cpu == on_gpu.replace("--xsafety-device cuda", "--xsafety-device cpu")
    other = GateStep("pytest suites --xsafety-device auto\n", ".", {})
    with pytest.raises(SystemExit, match="the gate command has no '--xsafety-device cuda'"):
        step_script(other, "cpu")
    unknown = GateStep("pytest suites ${{ inputs.model }}\n", ".", {})
    with pytest.raises(SystemExit, match=r"cannot stand in for \$\{\{ inputs.model \}\}"):
        step_script(unknown, "cuda")


GPU_OUTPUT = """\
[gw0] xsafety: loading llama2-shape from /dev/shm/m (cuda)
[gw1] xsafety: loaded llama2-shape in 14s
[gw0] xsafety: loaded llama2-shape in 12s
[gw0] xsafety: generating llama2-shape/few-shot: 450 prompt(s) in 1 batch(es), at most 256 new tokens each
[gw0] xsafety: llama2-shape/few-shot: out of memory on a batch of 450 prompts: retried in halves of 225; the group's later batches at most 225
[gw0] xsafety: generated llama2-shape/few-shot: 450/450 in 1m02s (1858 tok/s), peak GPU memory 98.2 GB (101.0 GB reserved)
[gw1] xsafety: generating llama2-shape/baseline: 450 prompt(s) in 1 batch(es), at most 256 new tokens each
[gw1] xsafety: generated llama2-shape/baseline: 450/450 in 14s (8229 tok/s), peak GPU memory 60.1 GB (62.0 GB reserved)
[gw1] xsafety: llama2-shape/helpful: all 450 response(s) from the response cache
snapshots in snapshots/ (drift policy label): 1300 unchanged, 50 text drift, 0 label flips, 0 new, 0 unused
"""


def test_the_gate_reads_loads_speed_memory_and_halvings_from_the_terminal() -> None:
    from benchmarks.gpu_gate import Figures, Strategy, read_output

    figures = Figures("cold, -n 2", "-n 2", 0, 80.0)
    read_output(figures, GPU_OUTPUT, "cuda")
    assert figures.loads == ["gw1: 14s", "gw0: 12s"]
    assert figures.strategies == {
        "few-shot": Strategy("gw0", 450, 1, "1m02s", 1858, 98.2, 101.0),
        "baseline": Strategy("gw1", 450, 1, "14s", 8229, 60.1, 62.0),
        "helpful": Strategy("gw1", 450, from_cache=True),
    }
    assert figures.oom_halvings == [
        "xsafety: llama2-shape/few-shot: out of memory on a batch of 450 prompts: retried in "
        "halves of 225; the group's later batches at most 225"
    ]
    assert figures.peak_gpu_memory == (
        "gw0 98.2 GB (101.0 GB reserved), gw1 60.1 GB (62.0 GB reserved); "
        "reserved together at most 163.0 GB"
    )
    assert figures.snapshot_line == (
        "snapshots in snapshots/ (drift policy label): 1300 unchanged, 50 text drift, "
        "0 label flips, 0 new, 0 unused"
    )
    serial = Figures("cold", "", 0, 80.0)
    read_output(serial, GPU_OUTPUT.replace("[gw0] ", "").replace("[gw1] ", ""), "cuda")
    assert serial.peak_gpu_memory == "98.2 GB (101.0 GB reserved)"
    cpu = Figures("cold", "", 0, 1.0)
    read_output(cpu, "xsafety: generated m/baseline: 6/6 in 0s (100 tok/s)\n", "cpu")
    assert cpu.peak_gpu_memory == "n/a (cpu)"


@pytest.mark.slow  # a subprocess that builds a model and runs pytest four times
def test_tiny_gate_runs_the_workflow_command_four_times(tmp_path: Path, xstest_csv: Path) -> None:
    pytest.importorskip("transformers")
    out = tmp_path / "gate"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_gate.py", "--tiny", "--suite", str(xstest_csv),
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    gate = json.loads((out / "gate.json").read_text())
    assert gate["command"] == WORKFLOW_COMMAND
    assert gate["model"]["shape"] == "tiny"
    assert gate["sample"] == 2
    assert set(gate["machine"]) >= {"device", "torch", "transformers"}
    runs = gate["runs"]
    assert [r["name"] for r in runs] == [
        "cold, --snapshot-update", "cold again, no cache", "cold, -n 2", "warm",
    ]  # fmt: skip
    assert [r["addopts"] for r in runs] == [
        "--snapshot-update --xsafety-sample 2",
        "--xsafety-no-cache --xsafety-sample 2",
        "--xsafety-no-cache -n 2 --xsafety-sample 2",
        "--xsafety-sample 2",
    ]
    strategies = ["baseline", "helpful", "guardrail", "few-shot", "contextual"]
    # XSTest's first 2 prompts of each of its 18 types: 36 per strategy, 180 per run.
    for run in runs:
        assert run["exit_code"] == 0
        assert run["wall_s"] > 0
        assert sorted(run["strategies"]) == sorted(strategies)
        assert [s["cases"] for s in run["strategies"].values()] == [36] * 5
        assert run["peak_gpu_memory"] == "n/a (cpu)"
        assert run["oom_halvings"] == []
        assert run["verdict"]["errors"] == 0
    for run in runs[:3]:  # cold: generated, at batch 32 (the CPU default), so 32 + 4
        assert all(s["batches"] == 2 and s["tokens_per_s"] > 0 and not s["from_cache"]
                   for s in run["strategies"].values())  # fmt: skip
    assert len(runs[0]["loads"]) == 1
    assert [load.split(":")[0] for load in sorted(runs[2]["loads"])] == ["gw0", "gw1"]
    assert runs[3]["loads"] == []  # warm: the model is not loaded
    assert all(s["from_cache"] for s in runs[3]["strategies"].values())
    assert runs[0]["snapshots"] == {"unchanged": 0, "drift": 0, "flip": 0, "new": 180}
    assert runs[0]["snapshot_line"] == (
        "snapshots in snapshots/ (recorded by --snapshot-update): 0 unchanged, 0 text drift, "
        "0 label flips, 180 new, 0 unused"
    )
    for run in runs[1:]:
        assert run["snapshots"] == {"unchanged": 180, "drift": 0, "flip": 0, "new": 0}
    # fp32 on a CPU: the same text whatever the run, the worker or the cache.
    assert [
        (c["run"], c["cases"], c["label_differences"], c["response_hash_differences"],
         c["batch_plan"]) for c in gate["comparisons"]
    ] == [
        ("cold again, no cache", 180, 0, 0, "the same"),
        ("cold, -n 2", 180, 0, 0, "the same"),
        ("warm", 180, 0, 0, "n/a (nothing generated)"),
    ]  # fmt: skip
    assert [t["target"] for t in gate["targets"]] == [
        "two cold runs: 0 label flips, 0 text drift",
        "-n 2: 0 label flips against serial (text drift reported)",
        "cold run under 120 s, load included",
        "warm rerun under 10 s",
        "warm rerun loads no model",
    ]
    assert (out / "run-3.txt").read_text().count("xsafety: loaded llama2-shape in") == 2
    printed = done.stdout
    assert "run 4: warm: wall " in printed
    assert "  baseline    36 cases, all from the response cache" in printed
    assert "cold, -n 2 vs run 1: 0/180 labels differ, 0/180 response hashes differ; " \
           "batch plans the same" in printed  # fmt: skip
