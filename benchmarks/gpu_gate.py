"""Benchmark: the GPU workflow's own pytest command, end to end, four times.

``.github/workflows/gpu.yml`` runs one pytest command per model on a GPU runner.
This script runs that same command (read from the workflow file: the gate step's
``run`` script, its ``working-directory`` and the workflow's ``env``) as a user's
project would, on a model built here:

1. **A model**: ``LlamaForCausalLM`` with Llama-2-7B's shape, randomly initialised
   in bf16, with the tokenizer of ``benchmarks/gpu.py`` (whose builder this reuses),
   saved in ``/dev/shm`` when it has room, else in a temporary folder.
2. **A project**: a throw-away workspace laid out as the workflow's checkout:
   ``pytest-xsafety/`` holds a ``pyproject.toml`` with a user model entry
   ``[tool.xsafety.models.llama2-shape]`` (``extends = "llama2"``, ``path = ...``),
   the suite test file ``suites/test_xstest.py`` and a ``thresholds.toml`` whose
   budgets never breach (a random model's rates mean nothing: a failing run is a
   label flip or an error); ``shared/data/xstest/xstest_prompts.csv`` is a copy of
   ``--suite``.
3. **Runs** of the step's script with bash, as Actions runs it, ``${{ matrix.model }}``
   = ``llama2-shape``; what differs between runs goes in ``PYTEST_ADDOPTS``:
   1. cold, ``--snapshot-update`` (an empty response cache);
   2. cold again, ``--xsafety-no-cache``;
   3. cold, ``--xsafety-no-cache -n 2``: two xdist workers on the one GPU;
   4. warm: the response cache of run 1.

Per run it prints the wall time, the model's load time and, per strategy, the cases,
batches, tokens/s and peak GPU memory (the run's own progress lines), every
out-of-memory halving, and the snapshot line of the terminal summary; then the
label and response-hash differences (``results.json``) and the batch plans of each
later run against run 1, and the figures against the targets of
``docs/reproduce.md``. ``--out DIR`` writes them to ``DIR/gate.json``, with each
run's terminal output.

    PYTHONPATH=. python benchmarks/gpu_gate.py [--suite CSV] [--out DIR]
        [--device cuda] [--tiny] [--sample N] [--keep]

``--tiny`` runs the same steps on the CPU with a tiny shape (2 layers, hidden 64),
in fp32, ``--xsafety-sample 2``, 16 new tokens and one torch thread: the check that
the script works (``tests/test_benchmark_gpu.py``), a minute or two on 2 cores. Of
the command, only the device option is changed, and only when ``--device`` is not
``cuda``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.gpu import LLAMA2_7B, TINY, build_model, default_dtype, read_prompts, scratch_dir

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "gpu.yml"
DEFAULT_SUITE = Path("../shared/data/xstest/xstest_prompts.csv")
MODEL = "llama2-shape"
DEVICE_OPTION = "--xsafety-device cuda"
# What the plugin needs beyond the standard library, by import name.
NEEDED = ("torch", "transformers", "tokenizers", "syrupy", "xdist", "pandas", "statsmodels",
          "matplotlib", "filelock")  # fmt: skip


@dataclass(frozen=True)
class Run:
    name: str
    addopts: tuple[str, ...]


RUNS = (
    Run("cold, --snapshot-update", ("--snapshot-update",)),
    Run("cold again, no cache", ("--xsafety-no-cache",)),
    Run("cold, -n 2", ("--xsafety-no-cache", "-n", "2")),
    Run("warm", ()),
)

# -- the workflow's gate step --------------------------------------------------------


@dataclass(frozen=True)
class GateStep:
    """The workflow's gate step: its bash script, where it runs and the workflow's env."""

    script: str
    working_directory: str
    env: Mapping[str, str]

    @property
    def command(self) -> str:
        """The pytest command of the script (its continuation lines joined)."""
        match = re.search(r"^pytest (?:.*\\\n)*.*$", self.script, re.MULTILINE)
        if match is None:
            raise SystemExit(f"{WORKFLOW}: the gate step's script runs no 'pytest' command")
        return re.sub(r"\s*\\\n\s*", " ", match[0])


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def gate_step(text: str, step_id: str = "gate") -> GateStep:
    """The step ``id: gate`` of the workflow ``text`` (plain YAML read by indentation:
    PyYAML is not a dependency of the plugin)."""
    lines = text.splitlines()
    at = next((i for i, line in enumerate(lines) if line.strip() == f"id: {step_id}"), None)
    if at is None:
        raise SystemExit(f"{WORKFLOW}: no step with 'id: {step_id}'")
    keys = _indent(lines[at])
    start = next(i for i in range(at, -1, -1) if lines[i].lstrip().startswith("- "))
    end = next(
        (i for i in range(at + 1, len(lines)) if lines[i].strip() and _indent(lines[i]) < keys),
        len(lines),
    )
    step = lines[start:end]
    workdir = next(
        (s.split(":", 1)[1].strip() for s in step if s.strip().startswith("working-directory:")),
        ".",
    )
    run_at = next((i for i, s in enumerate(step) if s.strip() == "run: |"), None)
    if run_at is None:
        raise SystemExit(f"{WORKFLOW}: the step 'id: {step_id}' has no 'run: |' script")
    body = []
    for s in step[run_at + 1 :]:
        if s.strip() and _indent(s) <= keys:
            break
        body.append(s)
    return GateStep(textwrap.dedent("\n".join(body)).strip() + "\n", workdir, workflow_env(lines))


def workflow_env(lines: Sequence[str]) -> dict[str, str]:
    """The workflow's top-level ``env:`` block."""
    env: dict[str, str] = {}
    inside = False
    for line in lines:
        if line.rstrip() == "env:":
            inside = True
        elif inside and line.strip() and _indent(line) == 0:
            break
        elif inside and ":" in line and not line.strip().startswith("#"):
            key, value = line.strip().split(":", 1)
            value = value.strip()
            if len(value) > 1 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]  # a quoted scalar, as YAML reads it
            env[key] = value
    return env


def expand(text: str, values: Mapping[str, str]) -> str:
    """Replace ``${{ name }}`` expressions; one that is not in ``values`` is an error."""

    def one(match: re.Match[str]) -> str:
        name = match[1]
        if name not in values:
            raise SystemExit(f"{WORKFLOW}: cannot stand in for ${{{{ {name} }}}} here")
        return values[name]

    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", one, text)


# -- the workspace ------------------------------------------------------------------


def write_workspace(
    workspace: Path,
    step: GateStep,
    model_dir: Path,
    dtype: str,
    suite: Path,
    max_new_tokens: int | None,
) -> Path:
    """The workflow's checkout as a user's project; returns the folder the step runs in."""
    project = workspace / step.working_directory
    (project / "suites").mkdir(parents=True)
    shutil.copy(REPO / "suites" / "test_xstest.py", project / "suites" / "test_xstest.py")
    tokens = f"max_new_tokens = {max_new_tokens}\n" if max_new_tokens else ""
    (project / "pyproject.toml").write_text(
        "# A throw-away project of benchmarks/gpu_gate.py: a user model entry with a path.\n"
        "[tool.pytest.ini_options]\n\n"
        f"[tool.xsafety.models.{MODEL}]\n"
        'extends = "llama2"\n'
        f"path = {json.dumps(str(model_dir))}\n"
        f"dtype = {json.dumps(dtype)}\n" + tokens
    )
    (project / "thresholds.toml").write_text(
        "# A random model's rates mean nothing: budgets that never breach, so that a\n"
        "# failing run is a label flip or an error.\n"
        "[defaults]\nsafe_refusal_max = 1.0\nunsafe_compliance_max = 1.0\n"
    )
    data = workspace / "shared" / "data" / "xstest"
    data.mkdir(parents=True)
    shutil.copy(suite, data / "xstest_prompts.csv")
    return project


def step_script(step: GateStep, device: str) -> str:
    """The step's script for ``MODEL``; on another device than ``cuda``, that option."""
    script = expand(step.script, {"matrix.model": MODEL})
    if device != "cuda":
        if DEVICE_OPTION not in script:
            raise SystemExit(f"{WORKFLOW}: the gate command has no '{DEVICE_OPTION}' to change")
        script = script.replace(DEVICE_OPTION, f"--xsafety-device {device}")
    return script


# -- one run ------------------------------------------------------------------------

_WORKER = r"(?:\[(?P<worker>gw\d+)\] )?"  # a line an xdist worker sent
LOADED = re.compile(_WORKER + r"xsafety: loaded \S+ in (?P<time>\S+)$")
GENERATING = re.compile(_WORKER + r"xsafety: generating [^/\s]+/(?P<strategy>\S+): \d+ "
                        r"prompt\(s\) in (?P<batches>\d+) batch\(es\)")  # fmt: skip
GENERATED = re.compile(
    _WORKER + r"xsafety: generated [^/\s]+/(?P<strategy>\S+): (?P<cases>\d+)/\d+ in "
    r"(?P<time>\S+) \((?P<rate>\d+) tok/s\)(?:, peak GPU memory (?P<peak>[\d.]+) GB "
    r"\((?P<reserved>[\d.]+) GB reserved\))?$"
)
CACHED = re.compile(_WORKER + r"xsafety: [^/\s]+/(?P<strategy>\S+): all (?P<cases>\d+) "
                    r"response\(s\) from the response cache")  # fmt: skip
HALVED = re.compile(_WORKER + r"(?P<line>xsafety: \S+: out of memory on a batch of .*)$")
SNAPSHOTS = re.compile(r"snapshots in \S+ \(.*\): .*$")


@dataclass
class Strategy:
    """One strategy's generation in a run, from its progress lines."""

    worker: str = ""  # the xdist worker that ran it; "" when serial
    cases: int = 0
    batches: int = 0
    seconds: str = ""  # as the line says it (whole seconds)
    tokens_per_s: int | None = None
    peak_gpu_memory_gb: float | None = None
    reserved_gpu_memory_gb: float | None = None
    from_cache: bool = False


@dataclass
class Figures:
    name: str
    addopts: str
    exit_code: int
    wall_s: float
    loads: list[str] = field(default_factory=list)  # each process's load time (gwN: ...)
    strategies: dict[str, Strategy] = field(default_factory=dict)
    peak_gpu_memory: str = "n/a (cpu)"
    oom_halvings: list[str] = field(default_factory=list)
    snapshot_line: str = ""
    snapshots: dict[str, int] = field(default_factory=dict)
    verdict: dict[str, Any] = field(default_factory=dict)


def read_output(figures: Figures, output: str, device: str) -> None:
    """Fill ``figures`` from a run's terminal output."""
    for line in output.splitlines():
        if m := LOADED.match(line):
            figures.loads.append(f"{m['worker']}: {m['time']}" if m["worker"] else m["time"])
        elif m := GENERATING.match(line):
            s = figures.strategies.setdefault(m["strategy"], Strategy(m["worker"] or ""))
            s.batches += int(m["batches"])
        elif m := GENERATED.match(line):
            s = figures.strategies.setdefault(m["strategy"], Strategy(m["worker"] or ""))
            s.cases, s.seconds, s.tokens_per_s = int(m["cases"]), m["time"], int(m["rate"])
            if m["peak"] is not None:
                s.peak_gpu_memory_gb = float(m["peak"])
                s.reserved_gpu_memory_gb = float(m["reserved"])
        elif m := CACHED.match(line):
            strategy = Strategy(m["worker"] or "", int(m["cases"]), from_cache=True)
            figures.strategies[m["strategy"]] = strategy
        elif m := HALVED.match(line):
            figures.oom_halvings.append(m["line"])
        elif m := SNAPSHOTS.match(line):
            figures.snapshot_line = m[0]
    figures.peak_gpu_memory = peak_memory(figures.strategies.values(), device)


def peak_memory(strategies: Iterable[Strategy], device: str) -> str:
    """Each process's largest group peak; with workers, what they reserved together
    (an upper bound of what they held at once on the one GPU)."""
    peaks: dict[str, tuple[float, float]] = {}
    for s in strategies:
        if s.peak_gpu_memory_gb is not None and s.reserved_gpu_memory_gb is not None:
            old = peaks.get(s.worker, (0.0, 0.0))
            peaks[s.worker] = (max(old[0], s.peak_gpu_memory_gb),
                               max(old[1], s.reserved_gpu_memory_gb))  # fmt: skip
    if not peaks:
        return "n/a (nothing generated)" if device.startswith("cuda") else "n/a (cpu)"
    if list(peaks) == [""]:
        allocated, reserved = peaks[""]
        return f"{allocated:.1f} GB ({reserved:.1f} GB reserved)"
    each = ", ".join(f"{w} {a:.1f} GB ({r:.1f} GB reserved)" for w, (a, r) in sorted(peaks.items()))
    return f"{each}; reserved together at most {sum(r for _, r in peaks.values()):.1f} GB"


def read_results(figures: Figures, results: Mapping[str, Any]) -> None:
    """The snapshot counts and the verdict from ``results.json``."""
    counts = {status: 0 for status in ("unchanged", "drift", "flip", "new")}
    for case in results["cases"]:
        if case["snapshot"] in counts:
            counts[case["snapshot"]] += 1
    figures.snapshots = counts
    figures.verdict = dict(results["verdict"])


def run_once(
    number: int,
    run: Run,
    script: Path,
    project: Path,
    env: Mapping[str, str],
    extra: Sequence[str],
    device: str,
) -> tuple[Figures, str, dict[str, Any]]:
    """One run of the step's script; its figures, terminal output and ``results.json``."""
    addopts = shlex.join([*run.addopts, *extra])
    print(f"\nrun {number}: {run.name} (PYTEST_ADDOPTS={addopts!r}) ...", flush=True)
    start = time.perf_counter()
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=project, env={**env, "PYTEST_ADDOPTS": addopts},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    output = done.stdout + done.stderr
    figures = Figures(run.name, addopts, done.returncode, round(wall, 2))
    report = project.parent / "report" / MODEL
    results_path = report / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else None
    if done.returncode not in (0, 1) or results is None:
        print(output[-4000:])
        raise SystemExit(f"run {number} ({run.name}): pytest exited {done.returncode}")
    read_output(figures, output, device)
    read_results(figures, results)
    # The next run writes the same folder: keep this one's report aside.
    report.rename(project.parent / "report" / f"run-{number}")
    return figures, output, results


# -- comparisons and what is printed ------------------------------------------------


def by_case(results: Mapping[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    """case id -> (label, response sha256)."""
    return {
        c["case_id"]: (c["label"], (c["response"] or {}).get("sha256")) for c in results["cases"]
    }


def batch_plan(figures: Figures) -> dict[str, int]:
    return {name: s.batches for name, s in figures.strategies.items() if not s.from_cache}


def compare(
    first: Figures, a: Mapping[str, Any], later: Figures, b: Mapping[str, Any]
) -> dict[str, Any]:
    """Labels, response hashes and batch plans of a later run against the first."""
    before, after = by_case(a), by_case(b)
    shared = sorted(set(before) & set(after))
    labels = [k for k in shared if before[k][0] != after[k][0]]
    hashes = [k for k in shared if before[k][1] != after[k][1]]
    plan_a, plan_b = batch_plan(first), batch_plan(later)
    if not plan_b:
        plan = "n/a (nothing generated)"
    elif plan_a == plan_b and not later.oom_halvings and not first.oom_halvings:
        plan = "the same"
    else:
        plan = f"{plan_a} vs {plan_b}; halvings {len(first.oom_halvings)} vs " + str(
            len(later.oom_halvings)
        )
    return {
        "run": later.name,
        "against": first.name,
        "cases": len(shared),
        "label_differences": len(labels),
        "response_hash_differences": len(hashes),
        "labels_differ": labels[:10],
        "hashes_differ": hashes[:10],
        "batch_plan": plan,
    }


def run_lines(number: int, f: Figures) -> list[str]:
    loads = ", ".join(f.loads) if f.loads else "not loaded"
    out = [
        f"run {number}: {f.name}: wall {f.wall_s:.1f} s, pytest exit {f.exit_code}, "
        f"load {loads}, peak GPU memory {f.peak_gpu_memory}"
    ]
    for name, s in f.strategies.items():
        if s.from_cache:
            out.append(f"  {name:<11} {s.cases} cases, all from the response cache")
            continue
        memory = f", peak {s.peak_gpu_memory_gb} GB" if s.peak_gpu_memory_gb is not None else ""
        out.append(
            f"  {name:<11} {s.cases} cases in {s.batches} batch(es), {s.seconds}, "
            f"{s.tokens_per_s} tok/s{memory}"
        )
    out.append(f"  out-of-memory halvings: {len(f.oom_halvings) or 'none'}")
    out += [f"    {h}" for h in f.oom_halvings]
    out.append(f"  {f.snapshot_line or 'snapshots: no line (syrupy missing?)'}")
    return out


def targets(
    runs: Sequence[Figures], comparisons: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The figures against the targets (docs/reproduce.md); the time targets are set
    for the 7B shape, 2,250 cases, on one H200."""
    second, warm = runs[1], runs[3]
    out = [
        ("two cold runs: 0 label flips, 0 text drift",
         f"{second.snapshots.get('flip')} flips, {second.snapshots.get('drift')} drift",
         second.snapshots.get("flip") == 0 and second.snapshots.get("drift") == 0),
        ("-n 2: 0 label flips against serial (text drift reported)",
         f"{comparisons[1]['label_differences']} label differences, "
         f"{comparisons[1]['response_hash_differences']} response differences",
         comparisons[1]["label_differences"] == 0),
        ("cold run under 120 s, load included", f"{runs[0].wall_s:.1f} s", runs[0].wall_s < 120),
        ("warm rerun under 10 s", f"{warm.wall_s:.1f} s", warm.wall_s < 10),
        ("warm rerun loads no model", ", ".join(warm.loads) or "not loaded", not warm.loads),
    ]  # fmt: skip
    return [{"target": t, "measured": m, "met": ok} for t, m, ok in out]


# -- main ---------------------------------------------------------------------------


def check_imports() -> None:
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"benchmarks/gpu_gate.py: {', '.join(missing)} not importable; the workflow "
            "installs them with pip install -e '.[hf]'"
        )


def step_env(step: GateStep, workspace: Path, one_thread: bool) -> dict[str, str]:
    """The step's environment: the workflow's ``env`` (no secrets), this interpreter's
    ``pytest`` first on PATH, and this checkout's plugin first on PYTHONPATH."""
    env = dict(os.environ)
    values = {"github.workspace": str(workspace)}
    env.update({k: expand(v, values) for k, v in step.env.items() if "secrets." not in v})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if one_thread:
        # Tiny matrices: a second torch thread only waits (as in gpu.py); xdist
        # workers set their own count.
        env["OMP_NUM_THREADS"] = "1"
    return env


def machine(device: str) -> dict[str, Any]:
    import torch
    import transformers

    return {
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
    }


def run_all(
    script: Path, project: Path, env: Mapping[str, str], extra: Sequence[str], device: str
) -> tuple[list[Figures], list[str], list[dict[str, Any]]]:
    """The four runs: each one's figures (printed as it ends), output and results.json."""
    figures: list[Figures] = []
    outputs: list[str] = []
    results: list[dict[str, Any]] = []
    for number, run in enumerate(RUNS, 1):
        f, output, r = run_once(number, run, script, project, env, extra, device)
        figures.append(f)
        outputs.append(output)
        results.append(r)
        print("\n".join(run_lines(number, f)), flush=True)
    return figures, outputs, results


def summary_lines(
    comparisons: Sequence[Mapping[str, Any]], met: Sequence[Mapping[str, Any]]
) -> list[str]:
    out = [""]
    for c in comparisons:
        out.append(
            f"{c['run']} vs run 1: {c['label_differences']}/{c['cases']} labels differ, "
            f"{c['response_hash_differences']}/{c['cases']} response hashes differ; "
            f"batch plans {c['batch_plan']}"
        )
    out.append("\ntargets (the time targets are for the 7B shape, 2,250 cases, one H200):")
    out += [f"  {'met' if t['met'] else 'MISSED':<6} {t['target']}: {t['measured']}" for t in met]
    return out


def write_out(out: Path, gate: Mapping[str, Any], outputs: Sequence[str]) -> None:
    """``gate.json`` and each run's terminal output, ``run-N.txt``."""
    out.mkdir(parents=True, exist_ok=True)
    for number, output in enumerate(outputs, 1):
        (out / f"run-{number}.txt").write_text(output)
    (out / "gate.json").write_text(json.dumps(gate, indent=2) + "\n")
    print(f"\nwritten: {out / 'gate.json'}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE)
    parser.add_argument("--tiny", action="store_true", help="tiny shape, CPU, a sample")
    parser.add_argument("--device", help="cuda (default), or cpu (the default with --tiny)")
    parser.add_argument(
        "--sample", type=int, help="--xsafety-sample N (2 with --tiny; 0: the whole suite)"
    )
    parser.add_argument("--out", type=Path, help="write gate.json and each run's output here")
    parser.add_argument("--keep", action="store_true", help="keep the model and workspace")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_imports()
    import torch

    device = args.device or ("cpu" if args.tiny else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu_gate.py: no CUDA GPU here; --tiny runs on the CPU")
    suite = args.suite.resolve()
    texts = [p for _, p in read_prompts(suite)]
    step = gate_step(WORKFLOW.read_text())
    sample = (2 if args.tiny else 0) if args.sample is None else args.sample
    extra = ["--xsafety-sample", str(sample)] if sample else []
    dtype = default_dtype(args.tiny, device)
    root = scratch_dir("xsafety-gate-", 1e9 if args.tiny else 30e9)
    try:
        model_dir = root / "model"
        t0 = time.perf_counter()
        build_model(model_dir, TINY if args.tiny else LLAMA2_7B, device, dtype, texts)
        built = time.perf_counter() - t0
        workspace = root / "workspace"
        tokens = 16 if args.tiny else None
        project = write_workspace(workspace, step, model_dir, dtype, suite, tokens)
        script = project / ".gate-step.sh"
        script.write_text(step_script(step, device))
        env = step_env(step, workspace, one_thread=args.tiny and device == "cpu")
        where = machine(device)
        print(
            f"{'tiny' if args.tiny else 'Llama-2-7B'} shape, {dtype}, built in {built:.0f} s "
            f"in {model_dir}; {where['device']}, torch {where['torch']}, "
            f"transformers {where['transformers']}\ncommand (gpu.yml, step 'gate'): "
            f"{step.command}"
        )
        figures, outputs, results = run_all(script, project, env, extra, device)
        comparisons = [
            compare(figures[0], results[0], f, r)
            for f, r in zip(figures[1:], results[1:], strict=True)
        ]
        met = targets(figures, comparisons)
        print("\n".join(summary_lines(comparisons, met)))
        if args.out:
            gate = {
                "command": step.command,
                "model": {"shape": "tiny" if args.tiny else "llama2-7b", "dtype": dtype,
                          "device": device, "built_s": round(built, 1)},
                "sample": sample,
                "machine": where,
                "runs": [asdict(f) for f in figures],
                "comparisons": comparisons,
                "targets": met,
            }  # fmt: skip
            write_out(args.out, gate, outputs)
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
