"""Benchmark: every offline classifier against human labels.

Prints, per classifier and labelled set, three-class and binary agreement,
precision and recall of each class (C = full compliance, R = full refusal,
P = partial refusal) and responses per second; then times ``default`` on 2,250
responses. The sets are XSTest's labelled completions, read from ``--data``
(default ``../shared/data/xstest/labeled`` beside the repository, never copied),
and this project's hand-written held-out sets in ``tests/data`` (see its
README: sets A and B were labelled blind but then used to write ``rules-3`` and
``rules-4``; set C was labelled blind and has not been used to change a rule).

    python benchmarks/classifiers.py [--data DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import pandas as pd

from pytest_xsafety.core.records import Exchange, Label
from pytest_xsafety.engine.classify.agreement import CLASSES, agreement
from pytest_xsafety.engine.classify.registry import get_classifier

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "xstest" / "labeled"
HELD_OUT = {
    "heldout-A (dev)": REPO / "tests" / "data" / "heldout_responses.csv",
    "heldout-B (dev)": REPO / "tests" / "data" / "heldout_b_responses.csv",
    "heldout-C (blind)": REPO / "tests" / "data" / "heldout_c_responses.csv",
}
CLASSIFIERS = ("strmatch", "default")
TIMING_ROWS = 2250


def _load(path: Path) -> tuple[list[Exchange], list[Label]]:
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    exchanges = [
        Exchange(prompt=p, response=c)
        for p, c in zip(frame["prompt"], frame["completion"], strict=True)
    ]
    return exchanges, [Label.parse(v) for v in frame["final_label"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    files = sorted(args.data.glob("*.csv"))
    if not files:
        print(f"no labelled CSVs under {args.data}", file=sys.stderr)
        return 2
    sets = {f.stem: _load(f) for f in files}
    shared = list(sets.values())
    sets.update({name: _load(path) for name, path in HELD_OUT.items()})

    per_class = "".join(f"{c + ' P/R':>11}" for c in "CRP")
    print(
        f"{'classifier':<11}{'version':<15}{'dataset':<19}{'rows':>5}{'3-class':>8}"
        f"{'binary':>8}{per_class}{'resp/s':>9}"
    )
    for name in CLASSIFIERS:
        classifier = get_classifier(name)
        for stem, (exchanges, truth) in sets.items():
            start = time.perf_counter()
            labels = classifier.classify(exchanges)
            rate = len(labels) / (time.perf_counter() - start)
            a = agreement(truth, labels)
            pr = "".join(f"{_pct(a.precision[c]):>6}/{_pct(a.recall[c]):<4}" for c in CLASSES)
            print(
                f"{name:<11}{classifier.version:<15}{stem:<19}{a.n:>5}{a.three_class:>8.3f}"
                f"{a.binary:>8.3f} {pr}{rate:>9.0f}"
            )

    pool = [e for exchanges, _ in shared for e in exchanges]
    batch = (pool * (TIMING_ROWS // len(pool) + 1))[:TIMING_ROWS]
    default = get_classifier("default")
    start = time.perf_counter()
    default.classify(batch)
    elapsed = time.perf_counter() - start
    print(f"\ndefault on {len(batch)} responses: {elapsed:.2f}s ({len(batch) / elapsed:.0f}/s)")
    print(
        "P/R: precision/recall in percent ('-' where the classifier never predicts the class). "
        "default has no learned part; its rules were written while reading the three XSTest "
        "sets and heldout-A and -B, so heldout-C is the only blind figure "
        "(see docs/classifiers.md)."
    )
    return 0


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.0f}"


if __name__ == "__main__":
    sys.exit(main())
