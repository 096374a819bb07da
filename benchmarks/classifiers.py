"""Benchmark: every offline classifier against human labels.

Prints two tables per classifier and labelled set. Agreement: three-class and
binary agreement, precision and recall of each class (C = full compliance,
R = full refusal, P = partial refusal) and responses per second. The gate:
the safe-refusal (SR) and unsafe-compliance (UC) rates by the humans and by
the classifier with the error in points, the share of labels the classifier
flags as uncertain and the share of its three-class errors those flags hold.
Then it times ``default`` on 2,250 responses.

The sets are the development sets of ``devsets.py`` (XSTest's labelled
completions and the RBR gold set, read from ``--data``, default
``../shared/data`` beside the repository, never copied) and this project's
hand-written sets in ``tests/data`` (see its README: sets A and B were
labelled blind but then used to write rules; set C was labelled blind). The
hand-written sets have no prompt types, so no rates.

    PYTHONPATH=. python benchmarks/classifiers.py [--data DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.devsets import REPO, SHARED_DATA, DevSet, load_all
from pytest_xsafety.core.records import Exchange, Label
from pytest_xsafety.engine.classify.agreement import CLASSES, Agreement, agreement
from pytest_xsafety.engine.classify.registry import decide, get_classifier

HAND_WRITTEN = {
    "heldout-A (dev)": REPO / "tests" / "data" / "heldout_responses.csv",
    "heldout-B (dev)": REPO / "tests" / "data" / "heldout_b_responses.csv",
    "heldout-C (blind)": REPO / "tests" / "data" / "heldout_c_responses.csv",
}
CLASSIFIERS = ("strmatch", "default")
TIMING_ROWS = 2250


def _hand_written(name: str, path: Path) -> tuple[DevSet, None]:
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    exchanges = [
        Exchange(prompt=p, response=c)
        for p, c in zip(frame["prompt"], frame["completion"], strict=True)
    ]
    return DevSet(name, exchanges, [Label.parse(v) for v in frame["final_label"]], []), None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    args = parser.parse_args(argv)
    shared = load_all(args.data)
    if not shared:
        print(f"no development sets under {args.data}", file=sys.stderr)
        return 2
    sets = [*shared, *(_hand_written(n, p)[0] for n, p in HAND_WRITTEN.items())]

    results: list[tuple[str, str, str, Agreement, float]] = []
    for name in CLASSIFIERS:
        classifier = get_classifier(name)
        for s in sets:
            start = time.perf_counter()
            decisions = decide(classifier, s.exchanges)
            rate = len(decisions) / (time.perf_counter() - start)
            a = agreement(
                s.truth,
                [d.label for d in decisions],
                expected=s.expected or None,
                uncertain=[d.uncertain for d in decisions],
            )
            results.append((name, classifier.version, s.name, a, rate))

    per_class = "".join(f"{c + ' P/R':>11}" for c in "CRP")
    print(
        f"{'classifier':<11}{'version':<15}{'dataset':<19}{'rows':>5}{'3-class':>8}"
        f"{'binary':>8}{per_class}{'resp/s':>9}"
    )
    for name, version, stem, a, rate in results:
        pr = "".join(f"{_pct(a.precision[c]):>6}/{_pct(a.recall[c]):<4}" for c in CLASSES)
        print(
            f"{name:<11}{version:<15}{stem:<19}{a.n:>5}{a.three_class:>8.3f}"
            f"{a.binary:>8.3f} {pr}{rate:>9.0f}"
        )
    print(
        f"\n{'classifier':<11}{'dataset':<19}{'SR human':>9}{'clf':>7}{'err':>7}"
        f"{'UC human':>10}{'clf':>7}{'err':>7}{'uncertain':>11}{'errors held':>13}"
    )
    for name, _, stem, a, _ in results:
        r, u = a.rates, a.uncertainty
        assert u is not None
        rates = (
            f"{_pct1(r.human_safe_refusal):>9}{_pct1(r.classifier_safe_refusal):>7}"
            f"{_pts(r.safe_refusal_error):>7}{_pct1(r.human_unsafe_compliance):>10}"
            f"{_pct1(r.classifier_unsafe_compliance):>7}{_pts(r.unsafe_compliance_error):>7}"
            if r
            else f"{'-':>9}{'-':>7}{'-':>7}{'-':>10}{'-':>7}{'-':>7}"
        )
        held = f"{u.caught}/{u.errors} {_pct(u.capture)}%"
        print(f"{name:<11}{stem:<19}{rates}{_pct1(u.share(a.n)):>10}%{held:>13}")

    pool = [e for s in shared for e in s.exchanges]
    batch = (pool * (TIMING_ROWS // len(pool) + 1))[:TIMING_ROWS]
    default = get_classifier("default")
    start = time.perf_counter()
    decide(default, batch)
    elapsed = time.perf_counter() - start
    print(f"\ndefault on {len(batch)} responses: {elapsed:.2f}s ({len(batch) / elapsed:.0f}/s)")
    print(
        "P/R: precision/recall in percent ('-' where the classifier never predicts the class). "
        "SR/UC: safe-refusal / unsafe-compliance rate in percent, err = classifier - humans "
        "in points. uncertain: share of rows flagged; errors held: flagged three-class "
        "errors / all three-class errors. default's rules were written while reading the "
        "development sets and heldout-A and -B, so heldout-C is the only blind figure "
        "(see docs/classifiers.md)."
    )
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{100 * x:.0f}"


def _pct1(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{100 * x:.1f}"


def _pts(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1f}"


if __name__ == "__main__":
    sys.exit(main())
