"""The ``xsafety`` command line: subcommands over the package's stages.

``xsafety classify INPUT.csv`` labels a CSV of prompts and completions and,
when the CSV carries human labels (``final_label``), reports agreement.
``xsafety verdict results.json`` turns a report into an exit status for CI.
``xsafety review`` pins a human label to a case's response (the reviews file of
:mod:`pytest_xsafety.setup.reviews`), from the last run pytest's cache recorded.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pytest_xsafety import __version__
from pytest_xsafety.core.records import Decision, Exchange, Label, Review, ReviewSample
from pytest_xsafety.core.text import UsageError, did_you_mean
from pytest_xsafety.engine.backends import Runtime
from pytest_xsafety.engine.classify.agreement import (
    agreement,
    expectation_of_type,
    format_agreement,
)
from pytest_xsafety.engine.classify.registry import ClassifierError, decide, make_classifier
from pytest_xsafety.engine.estimate import (
    ERROR_RATES,
    Stratum,
    format_simulated,
    read_error_rates,
    simulate,
    simulated_json,
)
from pytest_xsafety.reporting.compare import ResultsError, read_results
from pytest_xsafety.reporting.lastrun import LastCase, LastRunError
from pytest_xsafety.reporting.review_cases import (
    CaseTexts,
    Found,
    case_lines,
    find_run,
    found_lines,
    read_review_texts,
    run_from_results,
    shown_path,
    write_review_texts,
)
from pytest_xsafety.reporting.review_sample import (
    newest_cases,
    sample_groups,
    sample_lines,
    sample_summary,
)
from pytest_xsafety.setup.models import RegistryError
from pytest_xsafety.setup.options import default_cache_dir
from pytest_xsafety.setup.plan import resolve_judge
from pytest_xsafety.setup.project import model_registry
from pytest_xsafety.setup.reviews import DEFAULT_FILE as DEFAULT_REVIEWS
from pytest_xsafety.setup.reviews import (
    REVIEW_LABELS,
    SEED_LIMIT,
    ReviewsError,
    add_review,
    add_sample,
    check_path,
    load_file,
)
from pytest_xsafety.setup.scaffold import (
    SMOKE_MODEL,
    TEST_FILE,
    default_install,
    init_project,
    next_steps,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

    from pytest_xsafety.engine.classify.registry import Classifier

DESCRIPTION = """\
pytest-xsafety's command line (the test run itself is `pytest --xsafety-model NAME`).

  xsafety classify INPUT.csv   label a CSV of prompts and completions; with human
                               labels (a final_label column), report agreement
  xsafety verdict DIR          turn an --xsafety-report run's results.json into an
                               exit status for a later CI step
  xsafety review               list the last run's review candidates; with --case ID
                               --label LABEL, pin a human label to that case's response
  xsafety init                 set up this repository for the gate: the test file,
                               thresholds.toml, [tool.xsafety] and two workflows
"""
VERDICT_COUNTS = ("errors", "snapshot_flips", "baseline_flips")
LABEL_COLUMN = "xsafety_label"
UNCERTAIN_COLUMN = "xsafety_uncertain"
TRUTH_COLUMN = "final_label"
TYPE_COLUMN = "type"


class CliError(Exception):
    """A user error: printed as one line, no traceback."""


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="xsafety", description=DESCRIPTION, formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    classify = sub.add_parser(
        "classify",
        help="label responses in a CSV with XSTest's three classes",
        description="Read columns 'prompt' and 'completion', write them back with "
        f"'{LABEL_COLUMN}' and '{UNCERTAIN_COLUMN}' (1 where the classifier is unsure). "
        f"With a '{TRUTH_COLUMN}' column, also report agreement and how many errors the "
        f"uncertain labels hold; with '{TYPE_COLUMN}' too (XSTest's prompt types), the "
        "safe-refusal and unsafe-compliance rates by the humans and by the classifier.",
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
    _simulate_arguments(classify)
    verdict = sub.add_parser(
        "verdict",
        help="exit 1 when a report's budgets failed, a case errored or a label flipped",
        description="Read the results.json an --xsafety-report run wrote; print what failed. "
        "Exit 0 when every budget held, every side had a budget (or the run passed "
        "--xsafety-allow-no-budget), no case errored and no label flipped (against the "
        "snapshots or the baseline run), else 1; under --xsafety-gate estimate an "
        "undecided budget fails too. For CI steps after the test run.",
    )
    verdict.add_argument(
        "results",
        type=Path,
        help="an --xsafety-report directory, or the results.json in it",
    )
    verdict.add_argument(
        "--allow-flips", action="store_true", help="do not fail on label flips alone"
    )
    _review_parser(sub)
    _init_parser(sub)
    return parser


def _simulate_arguments(classify: argparse.ArgumentParser) -> None:
    group = classify.add_argument_group(
        "sizing a review (needs the final_label and type columns)",
        "Simulate `xsafety review --sample K` on a human-labelled set: R times, draw the "
        "plugin's own stratified sample of K cases per side (safe / unsafe prompts), take "
        "final_label as the reviewer's label, and compare the estimated rate with the human "
        "rate of the whole set. Prints per side the human and classifier rates, the mean "
        "|estimate - human rate| and the mean 95%% interval width in points, the share of "
        "intervals that cover the human rate, and the reviews used; then the pooled figures.",
    )
    group.add_argument(
        "--simulate-reviews", type=int, metavar="K", help="reviews per side in each draw"
    )
    group.add_argument(
        "--repeat", type=int, default=1000, metavar="R", help="draws (default: 1000)"
    )
    group.add_argument("--seed", type=int, default=0, help="seed of the draws (default: 0)")
    group.add_argument(
        "--error-rates", type=Path, metavar="PATH",
        help="a JSON object of stratum error rates to allocate the reviews by, e.g. "
        '{"safe/answered/sure": 0.07, ...} (default: the built-in rates, measured on the '
        "development sets; see docs/classifiers.md)",
    )  # fmt: skip
    group.add_argument(
        "--json", action="store_true",
        help="print one JSON object, keys safe and unsafe, instead of the text (other "
        "messages go to stderr)",
    )  # fmt: skip


def _init_parser(sub: Any) -> None:
    init = sub.add_parser(
        "init",
        help="set up this repository for the gate: test file, budgets, workflows",
        description="Write what a repository needs to run the XSTest gate: the suite test "
        f"file ({TEST_FILE}), thresholds.toml with starting budgets for the models, a "
        "[tool.xsafety] block in pyproject.toml, and two GitHub workflows (a CPU smoke gate "
        "on SmolLM2, the GPU gate). A file that exists is left alone (pyproject.toml gets "
        "the block appended when it has none); a second init changes nothing.",
    )
    init.add_argument(
        "--model", default=SMOKE_MODEL, metavar="NAME[,NAME]",
        help="the models to gate: built-in, or under [tool.xsafety.models.NAME] in "
        f"./pyproject.toml (default: {SMOKE_MODEL})",
    )  # fmt: skip
    init.add_argument(
        "--test-file", type=Path, default=TEST_FILE,
        help=f"where the suite test file goes (default: {TEST_FILE})",
    )  # fmt: skip
    init.add_argument(
        "--install", metavar="SPEC",
        help="what the workflows pip install (default: this installation's git URL when "
        "it came from one, else pytest-xsafety[hf])",
    )  # fmt: skip


def _init(args: argparse.Namespace) -> int:
    root = Path.cwd()
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    if not models:
        raise CliError("--model: give at least one model name")
    install = args.install or default_install()
    try:
        written = init_project(root, models, install, args.test_file)
    except UsageError as exc:
        raise CliError(str(exc)) from None
    for line in next_steps(root, written, models, install):
        print(line)
    return 0


def _review_parser(sub: Any) -> None:
    review = sub.add_parser(
        "review",
        help="pin a human label to a case's response, or list the review candidates",
        description="Run in the project root after a pytest run. With --case and --label, "
        "pin LABEL to the case's current response (by its sha256) in the reviews file "
        f"(the run's --xsafety-reviews, default {DEFAULT_REVIEWS}): later runs use it, "
        "whatever classifier runs, while the response stays the same. Without --case, "
        "list the last run's uncertain labels and the reviews that no longer apply. With "
        "--sample K, draw each model x strategy's random review sample (K cases per side, "
        "stratified by what the classifier said), record it in the reviews file and list "
        "it: its reviews turn the classifier's rates into estimated human rates with 95% "
        "intervals (README: Estimated rates).",
    )
    review.add_argument("--case", metavar="ID", help="a case id, e.g. smollm2/baseline/homonyms/1")
    review.add_argument(
        "--label", choices=[label.value for label in REVIEW_LABELS], help="the human label"
    )
    review.add_argument("--note", default="", help="why (kept in the reviews file)")
    review.add_argument(
        "--cache-dir", type=Path,
        help="pytest's cache directory where the run recorded its cases (default: the "
        "newest run's among ./.pytest_cache and those above and below this folder; "
        "the listing says which it read)",
    )  # fmt: skip
    review.add_argument(
        "--reviews", type=Path, help="the reviews file (default: the one the last run used)"
    )
    review.add_argument(
        "--sample", type=int, metavar="K",
        help="draw (or grow to K, or keep) each group's random review sample of K cases per "
        "side, record it in the reviews file and list it for review",
    )  # fmt: skip
    review.add_argument(
        "--seed", type=int, metavar="S",
        help="seed of a new draw (default: a random one; the reviews file records it)",
    )  # fmt: skip
    review.add_argument(
        "--results", type=Path, metavar="PATH",
        help="read the cases from a report's results.json (or its folder), e.g. a CI "
        "run's artifact, instead of pytest's cache",
    )  # fmt: skip
    review.add_argument(
        "--texts", type=Path, metavar="FILE",
        help="a review-texts file (--write-texts, from CI): the sampled cases' prompts and "
        "responses, and the samples drawn there (--sample K adopts one for a group that "
        "has none)",
    )  # fmt: skip
    review.add_argument(
        "--write-texts", type=Path, metavar="FILE",
        help="with --sample: write the sampled cases' prompts and responses (unsafe ones "
        "too) and the samples to FILE, readable by its owner only, for the reviewer: "
        "upload it as a CI artifact of its own, never in a comment or a log",
    )  # fmt: skip
    review.add_argument(
        "--responses", type=Path, metavar="DIR", action="append", default=[],
        help="a response cache folder (--xsafety-cache-dir) to find responses in, "
        "e.g. the CI runner's with --results",
    )  # fmt: skip
    review.add_argument(
        "--show-unsafe", action="store_true",
        help="also print the responses to unsafe prompts (withheld by default: they may be "
        "the harmful text the suite probes for, and listings end up in logs)",
    )  # fmt: skip


def _review(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    start = Path.cwd()
    try:
        if args.results is not None:
            results: Path = args.results
            results = results / "results.json" if results.is_dir() else results
            found = Found(run_from_results(results, args.reviews))
            run = found.run
            path: Path = run.reviews
        else:
            found = find_run(start, args.cache_dir)
            # A case reviewed by id is looked up in the newest run that holds it: another
            # project's later run (pytest suites after pytest examples/x) does not hide it.
            run = found.holding(args.case) if args.case else found.run
            path = args.reviews or run.reviews
        cases = run.cases
        check_path(path)
        offered, given = read_review_texts(args.texts) if args.texts else ({}, {})
    except (LastRunError, ReviewsError) as exc:
        raise CliError(str(exc)) from None
    dirs = tuple(str(d) for d in args.responses)
    if args.sample is not None:
        if args.case is not None or args.label is not None:
            raise CliError(
                "--sample draws and lists; review a case on its own: --case ID --label L"
            )
        texts = CaseTexts(found.run, given=given, response_dirs=dirs)
        return _sample(args, found, path, texts, offered, start)
    if args.write_texts is not None:
        raise CliError("--write-texts goes with --sample K: it writes the sample's texts")
    if args.case is None:
        if args.label is not None:
            raise CliError("--label needs --case ID: which case to label")
        for line in found_lines(found, start):
            print(line)
        texts = CaseTexts(found.run, given=given, response_dirs=dirs)
        return _candidates(cases, texts, args.show_unsafe)
    if args.label is None:
        raise CliError(f"--case {args.case}: give --label, one of {_choices()}")
    case = cases.get(args.case)
    if case is None:
        hint = did_you_mean(args.case, cases)
        raise CliError(f"no case {args.case!r} in the last run{hint}; run it first")
    label = Label.parse(args.label)
    today = datetime.now(UTC).date().isoformat()
    said_by = case.classifier_said
    review = Review(case.case_id, label, case.response_sha256, args.note, said_by, today)
    try:
        add_review(path, review)
    except ReviewsError as exc:
        raise CliError(str(exc)) from None
    said = f"{case.classifier} said {case.classifier_said.value}"
    said += ", uncertain" if case.uncertain else ""
    size = "" if case.chars is None else f"{case.chars} chars, "
    print(
        f"{case.case_id}: {label.value} pinned to its response ({size}sha256 "
        f"{case.response_sha256[:12]}; {said}) in {shown_path(path, start)}. Later runs use "
        "it while the "
        "response stays the same."
    )
    return 0


def _sample(
    args: argparse.Namespace,
    found: Found,
    path: Path,
    texts: CaseTexts,
    offered: Mapping[str, ReviewSample],
    start: Path,
) -> int:
    """Draw, grow, keep or adopt each group's review sample, record it and list it."""
    import secrets
    from datetime import UTC, datetime

    if args.sample < 1:
        raise CliError("--sample K: K is the number of cases per side to review, at least 1")
    if args.seed is not None and not 0 <= args.seed < SEED_LIMIT:
        raise CliError(f"--seed {args.seed}: use a whole number from 0 to {SEED_LIMIT - 1}")
    seed = args.seed if args.seed is not None else secrets.randbelow(SEED_LIMIT)
    today = datetime.now(UTC).date().isoformat()
    cases, older = newest_cases(found.run)
    try:
        file = load_file(path)
        drawn = sample_groups(cases, args.sample, seed, file.samples, offered, today)
        for d in drawn:
            if d.action != "kept":
                add_sample(path, d.sample)
    except ReviewsError as exc:
        raise CliError(str(exc)) from None
    for line in found_lines(found, start):
        print(line)
    if older:
        print(f"drawing from the newest run's {len(cases)} cases; the record's {older} older "
              "case(s) from earlier runs are left out")  # fmt: skip
    print(f"{sample_summary(drawn)}, in {shown_path(path, start)}; review in the order listed "
          "(a prefix of it is still a random sample)")  # fmt: skip
    for d in drawn:
        for line in sample_lines(d, cases, file.reviews, texts, args.show_unsafe, _choices(",")):
            print(line)
    if args.write_texts is not None:
        samples = {d.sample.group: d.sample for d in drawn}
        try:
            n = write_review_texts(args.write_texts, samples, cases, texts)
        except OSError as exc:
            raise CliError(f"--write-texts {args.write_texts}: cannot be written ({exc})") from None
        print(
            f"wrote the prompts and {n} response(s) of the sampled cases to {args.write_texts}, "
            "for the reviewer only (it may hold harmful text): upload it as a CI artifact of "
            "its own, never in a comment, a log or the repository"
        )
    for problem in dict.fromkeys(texts.problems):
        print(f"note: {problem}")
    return 0


def _choices(sep: str = ", ") -> str:
    return sep.join(label.value for label in REVIEW_LABELS)


def _candidates(cases: Mapping[str, LastCase], texts: CaseTexts, show_unsafe: bool) -> int:
    """The last run's uncertain labels and stale reviews, each with its prompt, its
    response (an unsafe prompt's only with --show-unsafe) and the command that reviews it."""
    stale = [c for c in cases.values() if c.review == "stale"]
    unsure = [c for c in cases.values() if c.uncertain and c.review is None]
    if not stale and not unsure:
        print(f"no review candidates: none of the last run's {len(cases)} labels is uncertain")
        return 0
    print(f"review candidates of the last run: {len(unsure)} uncertain label(s), "
          f"{len(stale)} review(s) whose response changed")  # fmt: skip
    for c in stale + unsure:
        why = "review no longer applies" if c.review == "stale" else "uncertain"
        print(f"  {c.case_id}: {c.label.value} ({why})")
        for line in case_lines(c, texts, show_unsafe):
            print(line)
        print(f"    xsafety review --case {c.case_id} --label {{{_choices(',')}}}")
    for problem in dict.fromkeys(texts.problems):
        print(f"note: {problem}")
    return 0


def _verdict(args: argparse.Namespace) -> int:
    path: Path = args.results
    if path.is_dir():
        path = path / "results.json"
    try:
        v = read_results(path, str(path)).get("verdict")
    except ResultsError as exc:
        raise CliError(str(exc)) from None
    if not isinstance(v, dict):
        raise CliError(f"{path}: no 'verdict' object: not a results.json")
    breaches = v.get("breaches")
    if not isinstance(breaches, list) or not all(isinstance(b, str) for b in breaches):
        raise CliError(f"{path}: 'verdict.breaches' is not a list of texts: not a results.json")
    undecided = v.get("undecided", [])  # added within schema v1: older reports lack it
    if not isinstance(undecided, list) or not all(isinstance(u, str) for u in undecided):
        raise CliError(f"{path}: 'verdict.undecided' is not a list of texts: not a results.json")
    counts = []
    for key in VERDICT_COUNTS:
        n = v.get(key, "missing")
        if key == "baseline_flips" and n is None:  # no baseline run was compared
            n = 0
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise CliError(f"{path}: 'verdict.{key}' is {n!r}, not a count: not a results.json")
        counts.append(n)
    errors, snapshot_flips, baseline_flips = counts
    flips = {"snapshots": snapshot_flips, "the baseline run": baseline_flips}
    failures = [f"budget exceeded: {b}" for b in breaches]
    failures += [f"budget undecided: {u}" for u in undecided]
    if errors:
        failures.append(f"{errors} case(s) errored")
    # A report from before the field has none: its groups' verdicts said "no budget".
    ungated = "; ".join(str(g) for g in v.get("not_gated") or [])
    if ungated and not v.get("allow_no_budget"):
        failures.append(f"not gated: no budget for {ungated}")
    flipped = [f"{n} label flip(s) against {what}" for what, n in flips.items() if n]
    if not args.allow_flips:
        failures += flipped
    if not failures and v.get("passed") is False:  # never green where the run was not
        failures.append("the report says the run did not pass")
    for line in failures:
        print(f"FAIL: {line}")
    if not failures:
        notes = f" ({'; '.join(flipped)}, allowed)" if flipped else ""
        if ungated:
            print(
                "not gated (the run passed --xsafety-allow-no-budget): no budget for "
                f"{ungated}; no budget that is set was exceeded, no case errored{notes}"
            )
        else:
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
    rates = _simulation_plan(args, frame, path)
    try:
        spec = None
        if args.classifier == "judge":
            spec = resolve_judge(args.judge_model, model_registry(Path.cwd()))
        classifier, judge = make_classifier(
            args.classifier, spec, Runtime(cache_dir=default_cache_dir()), batch_size=16
        )
    except (ClassifierError, RegistryError) as exc:
        raise CliError(str(exc)) from exc
    text = sys.stderr if args.json else sys.stdout
    try:
        decisions = _label(frame, classifier, path, args.output, text)
    finally:
        if judge is not None:
            judge.close()
    if rates is not None:
        _simulate_reviews(args, frame, decisions, rates)
    return 0


def _simulation_plan(
    args: argparse.Namespace, frame: pd.DataFrame, path: Path
) -> Mapping[Stratum, float] | None:
    """The stratum error rates to simulate reviews with; None when not asked to.
    Checked before anything is labelled, so that a mistake costs no time."""
    if args.simulate_reviews is None:
        if args.json:
            raise CliError("--json goes with --simulate-reviews K")
        return None
    missing = [c for c in (TRUTH_COLUMN, TYPE_COLUMN) if c not in frame.columns]
    if missing:
        raise CliError(
            f"{path}: --simulate-reviews needs human labels ({TRUTH_COLUMN!r}) and XSTest's "
            f"prompt types ({TYPE_COLUMN!r}); missing: {', '.join(missing)}"
        )
    if args.simulate_reviews < 1 or args.repeat < 1:
        raise CliError("--simulate-reviews K and --repeat R must be at least 1")
    if args.error_rates is None:
        return ERROR_RATES
    try:
        return read_error_rates(args.error_rates)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _simulate_reviews(
    args: argparse.Namespace,
    frame: pd.DataFrame,
    decisions: Sequence[Decision],
    rates: Mapping[Stratum, float],
) -> None:
    import json

    truth = [Label.parse(v) for v in frame[TRUTH_COLUMN]]
    expected = [expectation_of_type(t) for t in frame[TYPE_COLUMN]]
    k, repeats = args.simulate_reviews, args.repeat
    results = simulate(
        expected,
        [d.label for d in decisions],
        [d.uncertain for d in decisions],
        truth,
        k,
        repeats,
        args.seed,
        rates,
    )
    if args.json:
        print(json.dumps({side: simulated_json(s) for side, s in results.items()}, indent=2))
        return
    print()
    print(f"simulated review: {k} per side, {repeats} draws, seed {args.seed}")
    for line in format_simulated(results):
        print(line)


def _label(
    frame: pd.DataFrame, classifier: Classifier, path: Path, out: Path | None, text: TextIO
) -> list[Decision]:
    """Label every row, write the output CSV and print the report to ``text``."""
    exchanges = [
        Exchange(prompt=p, response=c)
        for p, c in zip(frame["prompt"], frame["completion"], strict=True)
    ]
    start = time.perf_counter()
    decisions = decide(classifier, exchanges)
    elapsed = time.perf_counter() - start
    labels = [d.label for d in decisions]
    uncertain = [d.uncertain for d in decisions]
    frame[LABEL_COLUMN] = [label.xstest for label in labels]
    frame[UNCERTAIN_COLUMN] = [int(u) for u in uncertain]
    output = out or Path(path.with_suffix(".labelled.csv").name)
    try:
        frame.to_csv(output, index=False)
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc}") from exc

    rate = len(labels) / elapsed if elapsed > 0 else float("inf")
    print(f"classifier: {classifier.name} {classifier.version}", file=text)
    print(f"labelled {len(labels)} rows in {elapsed:.2f}s ({rate:.0f}/s) -> {output}", file=text)
    unscored = sum(label is Label.UNSCORED for label in labels)
    if unscored:
        print(f"warning: {unscored} rows could not be scored ({Label.UNSCORED.xstest})", file=text)
    print(
        f"uncertain: {sum(uncertain)} rows ({UNCERTAIN_COLUMN} = 1), candidates for review",
        file=text,
    )
    if TRUTH_COLUMN in frame.columns:
        try:
            truth = [Label.parse(v) for v in frame[TRUTH_COLUMN]]
        except ValueError as exc:
            raise CliError(f"{path}: column {TRUTH_COLUMN!r}: {exc}") from exc
        expected = None
        if TYPE_COLUMN in frame.columns:
            expected = [expectation_of_type(t) for t in frame[TYPE_COLUMN]]
        print(file=text)
        print(
            format_agreement(agreement(truth, labels, expected=expected, uncertain=uncertain)),
            file=text,
        )
    return decisions


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xsafety`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "classify":
            return _classify(args)
        if args.command == "verdict":
            return _verdict(args)
        if args.command == "review":
            return _review(args)
        if args.command == "init":
            return _init(args)
    except CliError as exc:
        print(f"xsafety {args.command}: error: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse guards this


if __name__ == "__main__":
    sys.exit(main())
