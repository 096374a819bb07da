"""Benchmark: a fully cached rerun of the suite against a bare pytest run.

Runs ``pytest suites --xsafety-model smollm2 --xsafety-suite CSV`` once to make
sure every response is cached (slow the first time: it generates), then times
``--runs`` warm reruns, and the same number of runs of a bare pytest file with
as many trivial parametrized tests. Prints the median wall times, the plugin's
overhead per case and the ratio.

    python benchmarks/warm_rerun.py [--suite CSV] [--runs 3] [--args "..."]
"""

from __future__ import annotations

import argparse
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SUITE = REPO.parent / "shared" / "data" / "xstest" / "xstest_prompts.csv"
BARE = """
import pytest

@pytest.mark.parametrize("case", range({n}))
def test_trivial(case):
    assert case >= 0
"""


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    if proc.returncode not in (0, 1):  # 1: a budget may fail; that is still a full run
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}")
    return secs, tail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default=str(DEFAULT_SUITE))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--args", default="", help="extra pytest arguments for the suite run")
    args = ap.parse_args(argv)

    suite_cmd = [
        sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider",
        "--xsafety-model", "smollm2", "--xsafety-suite", args.suite, *shlex.split(args.args),
    ]  # fmt: skip
    secs, tail = timed(suite_cmd, REPO)
    print(f"priming run (generates what is not cached yet): {secs:.1f} s; {tail}")
    warm = []
    for _ in range(args.runs):
        secs, tail = timed(suite_cmd, REPO)
        warm.append(secs)
    n = sum(int(m[1]) for m in re.finditer(r"(\d+) (passed|failed|xfailed|errors?)\b", tail))
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_bare.py").write_text(BARE.format(n=n))
        bare = [
            timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp], REPO)[0]
            for _ in range(args.runs)
        ]
    w, b = statistics.median(warm), statistics.median(bare)
    print(f"warm suite run ({n} cases), median of {args.runs}: {w:.2f} s  ({tail})")
    print(f"bare pytest, {n} trivial parametrized tests, median of {args.runs}: {b:.2f} s")
    print(f"plugin overhead: {1000 * (w - b) / n:.2f} ms per case; ratio warm/bare {w / b:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
