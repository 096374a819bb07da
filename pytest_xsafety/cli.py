"""The ``xsafety`` command line: subcommands over the package's stages.

``xsafety classify INPUT.csv`` labels a CSV of prompts and completions and,
when the CSV carries human labels (``final_label``), reports agreement.
``xsafety verdict results.json`` turns a report into an exit status for CI.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_xsafety.core.records import Exchange, Label
from pytest_xsafety.engine.backends import Runtime
from pytest_xsafety.engine.classify.agreement import agreement, format_agreement
from pytest_xsafety.engine.classify.registry import ClassifierError, make_classifier
from pytest_xsafety.setup.models import RegistryError
from pytest_xsafety.setup.options import default_cache_dir
from pytest_xsafety.setup.plan import resolve_judge
from pytest_xsafety.setup.project import model_registry

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from pytest_xsafety.engine.classify.registry import Classifier

DESCRIPTION = """\
pytest-xsafety's command line (the test run itself is `pytest --xsafety-model NAME`).

  xsafety classify INPUT.csv   label a CSV of prompts and completions; with human
                               labels (a final_label column), report agreement
  xsafety verdict DIR          turn an --xsafety-report run's results.json into an
                               exit status for a later CI step
"""
LABEL_COLUMN = "xsafety_label"
TRUTH_COLUMN = "final_label"


class CliError(Exception):
    """A user error: printed as one line, no traceback."""


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="xsafety", description=DESCRIPTION, formatter_class=raw)
    sub = parser.add_subparsers(dest="command", required=True)
    classify = sub.add_parser(
        "classify",
        help="label responses in a CSV with XSTest's three classes",
        description="Read columns 'prompt' and 'completion', write them back with "
        f"'{LABEL_COLUMN}'. With a '{TRUTH_COLUMN}' column, also report agreement.",
    )
    classify.add_argument("input", type=Path, help="CSV with 'prompt' and 'completion' columns")
    classify.add_argument(
        "--classifier",
        default="default",
        help="built-in name (default, strmatch, judge), entry point, or 'package.module:attr'",
    )
    classify.add_argument(
        "--judge-model",
        metavar="NAME",
        help="with --classifier judge: the judge model, a built-in or one under "
        "[tool.xsafety.models.NAME] in ./pyproject.toml",
    )
    classify.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output CSV (default: INPUT's name with .labelled.csv, in the current directory: "
        "the input's folder may be read-only)",
    )
    verdict = sub.add_parser(
        "verdict",
        help="exit 1 when a report's budgets failed, a case errored or a label flipped",
        description="Read the results.json an --xsafety-report run wrote; print what failed. "
        "Exit 0 when every budget held, no case errored and no label flipped (against the "
        "snapshots or the baseline run), else 1. For CI steps after the test run.",
    )
    verdict.add_argument(
        "results",
        type=Path,
        help="an --xsafety-report directory, or the results.json in it",
    )
    verdict.add_argument(
        "--allow-flips", action="store_true", help="do not fail on label flips alone"
    )
    return parser


def _verdict(args: argparse.Namespace) -> int:
    import json

    path: Path = args.results
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        v = data["verdict"]
        flips = {"snapshots": v["snapshot_flips"], "the baseline run": v["baseline_flips"] or 0}
        breaches, errors = list(v["breaches"]), int(v["errors"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"cannot read {path} as pytest-xsafety results: {exc}") from exc
    failures = [f"budget exceeded: {b}" for b in breaches]
    if errors:
        failures.append(f"{errors} case(s) errored")
    flipped = [f"{n} label flip(s) against {what}" for what, n in flips.items() if n]
    if not args.allow_flips:
        failures += flipped
    for line in failures:
        print(f"FAIL: {line}")
    if not failures:
        notes = f" ({'; '.join(flipped)}, allowed)" if flipped else ""
        print(f"ok: every budget holds, no case errored{notes}")
    return 1 if failures else 0


def _classify(args: argparse.Namespace) -> int:
    import pandas as pd  # only this subcommand needs pandas

    path: Path = args.input
    if not path.is_file():
        raise CliError(f"input file not found: {path}")
    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path} as CSV: {exc}") from exc
    for column in ("prompt", "completion"):
        if column not in frame.columns:
            raise CliError(
                f"{path}: missing column {column!r} (found: {', '.join(map(str, frame.columns))})"
            )
    if args.classifier == "judge" and not args.judge_model:
        raise CliError("--classifier judge needs --judge-model NAME (a configured model)")
    try:
        spec = None
        if args.classifier == "judge":
            spec = resolve_judge(args.judge_model, model_registry(Path.cwd()))
        classifier, judge = make_classifier(
            args.classifier, spec, Runtime(cache_dir=default_cache_dir()), batch_size=16
        )
    except (ClassifierError, RegistryError) as exc:
        raise CliError(str(exc)) from exc
    try:
        _label(frame, classifier, path, args.output)
    finally:
        if judge is not None:
            judge.close()
    return 0


def _label(frame: pd.DataFrame, classifier: Classifier, path: Path, out: Path | None) -> None:
    """Label every row, write the output CSV and print the report."""
    exchanges = [
        Exchange(prompt=p, response=c)
        for p, c in zip(frame["prompt"], frame["completion"], strict=True)
    ]
    start = time.perf_counter()
    labels = classifier.classify(exchanges)
    elapsed = time.perf_counter() - start
    frame[LABEL_COLUMN] = [label.xstest for label in labels]
    output = out or Path(path.with_suffix(".labelled.csv").name)
    try:
        frame.to_csv(output, index=False)
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc}") from exc

    rate = len(labels) / elapsed if elapsed > 0 else float("inf")
    print(f"classifier: {classifier.name} {classifier.version}")
    print(f"labelled {len(labels)} rows in {elapsed:.2f}s ({rate:.0f}/s) -> {output}")
    unscored = sum(label is Label.UNSCORED for label in labels)
    if unscored:
        print(f"warning: {unscored} rows could not be scored ({Label.UNSCORED.xstest})")
    if TRUTH_COLUMN in frame.columns:
        try:
            truth = [Label.parse(v) for v in frame[TRUTH_COLUMN]]
        except ValueError as exc:
            raise CliError(f"{path}: column {TRUTH_COLUMN!r}: {exc}") from exc
        print()
        print(format_agreement(agreement(truth, labels)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xsafety`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "classify":
            return _classify(args)
        if args.command == "verdict":
            return _verdict(args)
    except CliError as exc:
        print(f"xsafety {args.command}: error: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse guards this


if __name__ == "__main__":
    sys.exit(main())
