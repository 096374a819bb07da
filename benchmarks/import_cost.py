"""Benchmark: what installing the plugin costs a pytest run that does not use it.

A lone ``pytest --version`` exits before any plugin loads (pytest >= 9), so it
cannot see a plugin's cost. This times the two smallest commands that load every
installed plugin: ``pytest --version --version`` (lists them) and
``pytest --collect-only -q`` in an empty directory (a run with nothing to run),
each with the plugin loaded and with it blocked (``-p no:xsafety``, its entry-point
name), runs interleaved, importing this checkout's package; prints the medians
of wall and CPU time (user + system, steadier on a shared machine) and ratios.
Then lists the slowest imports under ``python -X importtime -c "import
pytest_xsafety.plugin"`` and checks that torch, transformers, vllm and openai
stay unimported.

    python benchmarks/import_cost.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "vllm", "openai", "pandas", "numpy")
MUST_NOT_LOAD = ("torch", "transformers", "vllm", "openai")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    return env


COMMANDS = {
    "pytest --version --version": ["--version", "--version"],
    "pytest --collect-only -q (empty dir)": ["--collect-only", "-q", "-p", "no:cacheprovider"],
}
BLOCK = ["-p", "no:xsafety"]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(args: list[str], cwd: str) -> tuple[float, float, str]:
    """Wall time, CPU time (user + system: less sensitive to a busy machine), output."""
    cpu = _cpu()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 5):  # 5: no tests collected
        raise SystemExit(f"{args} failed:\n{done.stdout}{done.stderr}")
    return elapsed, _cpu() - cpu, done.stdout + done.stderr


def check_arms(cwd: str) -> None:
    """The plugin loads where it should and only there."""
    listing_on = _run(["-m", "pytest", *COMMANDS["pytest --version --version"]], cwd)[2]
    listing_off = _run(["-m", "pytest", *COMMANDS["pytest --version --version"], *BLOCK], cwd)[2]
    if "pytest-xsafety" not in listing_on or "pytest-xsafety" in listing_off:
        raise SystemExit("the plugin is not (only) loaded where expected:\n" + listing_on)


Arm = list[tuple[float, float]]  # (wall, cpu) per run


def time_command(args: list[str], runs: int, cwd: str) -> tuple[Arm, Arm]:
    on: Arm = []
    off: Arm = []
    for _ in range(runs):  # interleaved, so drift in machine load hits both arms
        on.append(_run(["-m", "pytest", *args], cwd)[:2])
        off.append(_run(["-m", "pytest", *args, *BLOCK], cwd)[:2])
    return on, off


def _report(name: str, on: Arm, off: Arm) -> None:
    print(f"{name}:")
    for i, kind in enumerate(("wall", "cpu")):
        a = statistics.median(r[i] for r in on)
        b = statistics.median(r[i] for r in off)
        print(
            f"  {kind:<4} median: plugin loaded {a * 1000:7.1f} ms, -p no:xsafety "
            f"{b * 1000:7.1f} ms; plugin adds {(a - b) * 1000:6.1f} ms, ratio {a / b:.2f}x"
        )


def import_profile(cwd: str) -> tuple[list[tuple[int, int, str]], list[str]]:
    """(self us, cumulative us, name) per import, and which heavy modules loaded."""
    code = (
        "import sys, pytest_xsafety.plugin\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((int(own), int(cumulative), name.rstrip()))
    loaded = [m for m in done.stdout.strip().split(",") if m]
    return rows, loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as cwd:
        check_arms(cwd)  # also warms the file cache and .pyc files
        timings = {name: time_command(cmd, args.runs, cwd) for name, cmd in COMMANDS.items()}
        rows, loaded = import_profile(cwd)
    print(f"{args.runs} runs per arm, interleaved ({sys.executable}):")
    for name, (on, off) in timings.items():
        _report(name, on, off)

    total = next(c for _, c, n in rows if n.strip() == "pytest_xsafety.plugin")
    own = sum(s for s, _, n in rows if n.strip().startswith("pytest_xsafety"))
    print(
        f'\npython -X importtime -c "import pytest_xsafety.plugin": {total / 1000:.1f} ms '
        f"cumulative (pytest itself included), {own / 1000:.1f} ms in pytest_xsafety modules"
    )
    print("  slowest imports by cumulative time:")
    for own_us, cumulative, name in sorted(rows, key=lambda r: -r[1])[:12]:
        print(f"  {cumulative / 1000:8.1f} ms cumulative {own_us / 1000:7.1f} ms self  {name}")
    print("  pytest_xsafety modules by self time:")
    for own_us, cumulative, name in sorted(rows, key=lambda r: -r[0]):
        if name.strip().startswith("pytest_xsafety"):
            print(f"  {own_us / 1000:8.1f} ms self {cumulative / 1000:8.1f} ms cumulative  {name}")
    bad = [m for m in loaded if m in MUST_NOT_LOAD]
    print(f"\nheavy modules imported by the plugin: {', '.join(loaded) or 'none'}")
    if bad:
        print(f"FAIL: importing the plugin imports {', '.join(bad)}")
        return 1
    print(f"ok: none of {', '.join(MUST_NOT_LOAD)} is imported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
