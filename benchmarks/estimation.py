"""Benchmark: estimated human rates from a simulated review sample, leave one set out.

For each development set (``devsets.py``: XSTest's three labelled completion sets and
the RBR gold set, read from ``--data``, never copied), the stratum error rates that
allocate the reviews are measured on the *other* sets, written to a JSON file, and the
set is run through the user-facing command::

    xsafety classify SET.csv --simulate-reviews K --repeat R --seed S --json \
        --error-rates RATES-WITHOUT-SET.json

so the table is what a team sizing its review budget would see. Printed:

1. Per set and side at ``--k`` (default 40): the human rate, the classifier's error
   alone, and the estimate's mean |error|, interval coverage and mean width.
2. The smallest K of ``--scan`` at which every set's mean error is at most 2 points.
3. Where the sample lands (issue 24, item 6): per set, the share of rows in the unsure
   strata and the share of the classifier's binary errors they hold, and the errors a
   K-review sample is expected to find, stratified as the plugin draws it against a
   simple random sample of the same size.
4. With ``--rates``: the error rates on all four sets, as ``ERROR_RATES`` ships them.
5. With ``--alternatives``: the designs measured and not adopted (docs/classifiers.md),
   on the same sets and K: a simple random sample with Wilson intervals on the human
   labels alone; PPI (the classifier's rate plus the sample's mean correction) with a
   normal interval; the adopted strata with a fixed allocation and a normal interval
   on a smoothed variance; the adopted design with a symmetric Jeffreys prior; and a
   third stratum level for "default and strmatch disagree".

    PYTHONPATH=. python benchmarks/estimation.py [--k 40] [--repeat 1000] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from benchmarks.devsets import SHARED_DATA, DevSet, load_all
from pytest_xsafety.core.records import Decision, Expectation
from pytest_xsafety.engine.classify.rules import explain
from pytest_xsafety.engine.estimate import (
    ERROR_RATES,
    Stratum,
    allocate,
    counted,
    stratum_name,
    stratum_of,
)

SIDES: tuple[Expectation, ...] = ("safe", "unsafe")
TARGET_POINTS = 2.0


def decisions(ds: DevSet) -> list[Decision]:
    return [explain(e.response, e.prompt) for e in ds.exchanges]


def error_counts(
    sets: Sequence[tuple[DevSet, list[Decision]]],
) -> dict[Stratum, tuple[int, int]]:
    """Rows and binary errors per stratum over ``sets``."""
    counts: dict[Stratum, list[int]] = {s: [0, 0] for s in ERROR_RATES}
    for ds, decided in sets:
        for side, truth, d in zip(ds.expected, ds.truth, decided, strict=True):
            c = counts[stratum_of(side, d.label, d.uncertain)]
            c[0] += 1
            c[1] += counted(side, truth) != counted(side, d.label)
    return {s: (n, e) for s, (n, e) in counts.items()}


def rates_of(counts: Mapping[Stratum, tuple[int, int]]) -> dict[Stratum, float]:
    """(errors + 0.5) / (rows + 1): as ``ERROR_RATES`` is made."""
    return {s: (e + 0.5) / (n + 1) for s, (n, e) in counts.items()}


def as_csv(ds: DevSet, folder: Path) -> Path:
    """The set as the CSV ``xsafety classify`` reads (XSTest's own files are already)."""
    path = folder / f"{ds.name}.csv"
    pd.DataFrame(
        {
            "prompt": [e.prompt for e in ds.exchanges],
            "completion": [e.response for e in ds.exchanges],
            # An unsafe prompt is a contrast_* type, as in XSTest.
            "type": ["rbr" if x == "safe" else "contrast_rbr" for x in ds.expected],
            "final_label": [t.xstest for t in ds.truth],
        }
    ).to_csv(path, index=False)
    return path


def simulate_cli(
    csv: Path, rates: Path, k: int, repeat: int, seed: int, folder: Path
) -> dict[str, dict[str, float]]:
    """The figures ``xsafety classify --simulate-reviews --json`` prints."""
    cmd = [
        sys.executable, "-m", "pytest_xsafety.cli", "classify", str(csv),
        "-o", str(folder / "labelled.csv"), "--simulate-reviews", str(k),
        "--repeat", str(repeat), "--seed", str(seed), "--json", "--error-rates", str(rates),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, dict[str, float]] = json.loads(done.stdout)
    return result


def landing(
    ds: DevSet, decided: Sequence[Decision], k: int, rates: Mapping[Stratum, float]
) -> list[str]:
    """Per side: unsure rows, the errors they hold, and the errors a sample finds."""
    lines = []
    for side in SIDES:
        rows = [
            (stratum_of(side, d.label, d.uncertain), counted(side, t) != counted(side, d.label))
            for x, t, d in zip(ds.expected, ds.truth, decided, strict=True)
            if x == side
        ]
        n, errors = len(rows), sum(e for _, e in rows)
        unsure = [e for s, e in rows if s[2]]
        sizes: dict[Stratum, int] = {}
        wrong: dict[Stratum, int] = {}
        for s, e in rows:
            sizes[s] = sizes.get(s, 0) + 1
            wrong[s] = wrong.get(s, 0) + e
        alloc = allocate(sizes, k, rates)
        found = sum(alloc[s] * wrong[s] / sizes[s] for s in alloc)
        at_random = min(k, n) * errors / n
        lines.append(
            f"{ds.name:16} {side:6} unsure rows {100 * len(unsure) / n:5.1f}%, holding "
            f"{sum(unsure):3d} of {errors:3d} binary errors "
            f"({100 * sum(unsure) / errors if errors else float('nan'):5.1f}%); a {k}-review "
            f"sample finds {found:4.1f} errors (simple random sample: {at_random:4.1f})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scan", default="40,60,80,120,160,200,240", help="K values")
    parser.add_argument("--rates", action="store_true", help="print ERROR_RATES as measured")
    parser.add_argument("--alternatives", action="store_true", help="the designs not adopted")
    args = parser.parse_args()

    sets = [(ds, decisions(ds)) for ds in load_all(args.data)]
    if args.alternatives:
        from benchmarks.alternatives import compare

        compare(sets, args.k, args.repeat, args.seed)
        return
    if args.rates:
        for s, (n, e) in error_counts(sets).items():
            shipped = ERROR_RATES[s]
            print(f"{stratum_name(s):26} {e:3d} errors in {n:4d} rows: {(e + 0.5) / (n + 1):.4f} "
                  f"(shipped {shipped:.4f})")  # fmt: skip
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs: dict[str, tuple[Path, Path]] = {}
        loso: dict[str, dict[Stratum, float]] = {}
        for ds, _ in sets:
            loso[ds.name] = rates_of(error_counts([o for o in sets if o[0] is not ds]))
            rates = folder / f"rates-without-{ds.name}.json"
            rates.write_text(json.dumps({stratum_name(s): r for s, r in loso[ds.name].items()}))
            runs[ds.name] = (as_csv(ds, folder), rates)

        print(f"Leave one set out, K = {args.k} per side, R = {args.repeat}, seed {args.seed}; "
              "points are percentage points")  # fmt: skip
        print("set              side    human  classifier alone |  estimate: mean |err|  "
              "coverage  mean width")  # fmt: skip
        errors: list[float] = []
        for name, (csv, rates) in runs.items():
            figures = simulate_cli(csv, rates, args.k, args.repeat, args.seed, folder)
            for side, f in figures.items():
                alone = abs(f["classifier_rate"] - f["human_rate"])
                print(f"{name:16} {side:6} {f['human_rate']:5.1f}%  {alone:10.1f} pts    |"
                      f"  {f['mean_abs_error']:16.2f} pts  {f['coverage']:8.3f}  "
                      f"{f['mean_width']:6.1f} pts")  # fmt: skip
                if name != "rbr":
                    errors.append(f["mean_abs_error"])
        print(f"XSTest sets: mean |error| {sum(errors) / len(errors):.2f} points, worst "
              f"{max(errors):.2f}")  # fmt: skip

        print(f"\nSmallest K with every set's mean error <= {TARGET_POINTS} points (R = "
              f"{args.repeat}):")  # fmt: skip
        for k in (int(v) for v in args.scan.split(",")):
            worst: dict[str, float] = {}
            for name, (csv, rates) in runs.items():
                figures = simulate_cli(csv, rates, k, args.repeat, args.seed, folder)
                # A set's mean error: over its two sides.
                worst[name] = sum(f["mean_abs_error"] for f in figures.values()) / len(figures)
            text = ", ".join(f"{n} {e:.2f}" for n, e in worst.items())
            print(f"  K = {k:3d}: {text}")
            if max(worst.values()) <= TARGET_POINTS:
                print(f"  -> K = {k}")
                break

        print(f"\nWhere a {args.k}-review sample lands (strata and rates without the set):")
        for ds, decided in sets:
            for line in landing(ds, decided, args.k, loso[ds.name]):
                print(line)


if __name__ == "__main__":
    main()
