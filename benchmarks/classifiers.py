"""Benchmark: every offline classifier against XSTest's human labels.

Prints, per classifier and labelled set, three-class and binary agreement,
partial-refusal precision and recall, and responses per second; then times
``default`` on 2,250 responses. Reads the labelled CSVs from ``--data``
(default ``../shared/data/xstest/labeled`` beside the repository); it never
copies them.

    python benchmarks/classifiers.py [--data DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from pytest_xsafety.agreement import agreement
from pytest_xsafety.classify import Exchange, get_classifier
from pytest_xsafety.records import Label

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "xstest" / "labeled"
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

    print(
        f"{'classifier':<12}{'version':<16}{'dataset':<18}{'3-class':>8}{'binary':>8}"
        f"{'PR prec':>9}{'PR rec':>8}{'resp/s':>10}"
    )
    for name in CLASSIFIERS:
        classifier = get_classifier(name)
        for stem, (exchanges, truth) in sets.items():
            start = time.perf_counter()
            labels = classifier.classify(exchanges)
            rate = len(labels) / (time.perf_counter() - start)
            a = agreement(truth, labels)
            print(
                f"{name:<12}{classifier.version:<16}{stem:<18}{a.three_class:>8.3f}"
                f"{a.binary:>8.3f}{a.precision[Label.PARTIAL_REFUSAL]:>9.3f}"
                f"{a.recall[Label.PARTIAL_REFUSAL]:>8.3f}{rate:>10.0f}"
            )

    pool = [e for exchanges, _ in sets.values() for e in exchanges]
    batch = (pool * (TIMING_ROWS // len(pool) + 1))[:TIMING_ROWS]
    default = get_classifier("default")
    start = time.perf_counter()
    default.classify(batch)
    elapsed = time.perf_counter() - start
    print(f"\ndefault on {len(batch)} responses: {elapsed:.2f}s ({len(batch) / elapsed:.0f}/s)")
    print(
        "default has no learned part, so there is no leave-one-dataset-out fit to report; "
        "its rules were written while reading all three sets (see docs/classifiers.md)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
