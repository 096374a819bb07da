"""End-to-end: strategies, the response cache and backend faults, serial and -n 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import run, setup


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_strategies_run_and_the_study_table_compares_them(
    pytester: pytest.Pytester, mode: list[str]
) -> None:
    # Refuses "laptop" only when the prompt arrives bare: the contextual frame and the
    # interactive clarification both get it answered.
    setup(pytester, refuse="^How do I shut|poison|break into|stolen")
    result = run(pytester, mode, "--xsafety-strategy", "baseline,contextual,interactive,few-shot")
    result.assert_outcomes(passed=22, xfailed=2)
    result.stdout.fnmatch_lines(
        [
            "*strategies against baseline*",
            "model*strategy*safe refusal*unsafe compliance*vs baseline*vs baseline",
            "fake*baseline*33.3%*0.0%*(baseline)*(baseline)",
            "fake*contextual*0.0%*0.0%*-100.0% rel.*+0.0 pts",
            "fake*interactive*0.0%*0.0%*-100.0% rel.*+0.0 pts",
            "fake*few-shot*33.3%*0.0%*+0.0% rel.*+0.0 pts",
            "interactive: 4 case(s) got a clarification turn; 1 changed label after it",
        ]
    )


def test_interactive_labels_the_final_answer(pytester: pytest.Pytester) -> None:
    log = setup(pytester, refuse="poison|break into|stolen")
    pytester.makefile(
        ".toml",
        pyproject='[tool.xsafety.models.fake]\nbackend = "fake"\n'
        f'options = {{ refuse = "poison|break into", relent = "stolen", log = "{log}" }}\n',
    )
    result = run(pytester, [], "--xsafety-strategy", "interactive", "-k", "contrast")
    # The unsafe prompt 6 is refused, then complied with after the clarification.
    result.assert_outcomes(passed=2, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "interactive: 3 case(s) got a clarification turn; 1 changed label after it",
            "XFAIL*fake/interactive/contrast_figurative/6*full_compliance of an unsafe*",
        ]
    )
    generated = lines(log)
    # Six first turns (one batch), then the three refusals' second turns in one batch.
    assert len(generated) == 9
    assert all("misread" in line for line in generated[6:])


def test_warm_cache_generates_nothing_and_a_new_strategy_only_itself(
    pytester: pytest.Pytester, mode: list[str]
) -> None:
    log = setup(pytester, refuse="poison|break into|stolen")
    cache = ["--xsafety-cache-dir", str(pytester.path / "cache")]
    run(pytester, mode, *cache).assert_outcomes(passed=6)
    assert len(lines(log)) == 6
    again = run(pytester, mode, *cache)
    again.assert_outcomes(passed=6)
    assert len(lines(log)) == 6  # nothing generated
    assert "xsafety: generating" not in again.stdout.str() + again.stderr.str()
    both = run(pytester, mode, *cache, "--xsafety-strategy", "baseline,helpful")
    both.assert_outcomes(passed=12)
    assert len(lines(log)) == 12  # only the new strategy's six
    run(pytester, mode, *cache, "--xsafety-no-cache").assert_outcomes(passed=6)
    assert len(lines(log)) == 18


def test_progress_is_shown_under_capture_and_xdist(
    pytester: pytest.Pytester, mode: list[str]
) -> None:
    setup(pytester, refuse="poison|break into|stolen")
    pytester.makefile(
        ".toml",
        pyproject='[tool.xsafety.models.fake]\nbackend = "fake"\n'
        'options = { refuse = "poison|break into|stolen", delay = "0.6" }\n',
    )
    # In a subprocess, so that what xdist workers write to the terminal is captured.
    result = pytester.runpytest_subprocess(
        "--xsafety-model", "fake", "--xsafety-suite", "suite.csv", "-p", "no:cacheprovider",
        "--xsafety-batch-size", "4", "--xsafety-no-cache", "--xsafety-progress", "0.1",
        "--xsafety-strategy", "baseline,helpful", *mode,
    )  # fmt: skip
    result.assert_outcomes(passed=12)
    assert "xsafety" not in result.stderr.str()  # everything goes through pytest's reporter
    out = result.stdout.lines
    prefix = r"(\[gw\d\] )?"
    for group in ("fake/baseline", "fake/helpful"):
        g = re.escape(group)
        found = [re.fullmatch(prefix + f"xsafety: {pattern}", line) for line in out
                 for pattern in (
                     rf"generating {g}: 6 prompt\(s\) in 2 batch\(es\), at most 256 new tokens each",
                     rf"generating {g}: 0/6, batch 1/2 at token \d+/256 \(.*left.*\)",
                     rf"generated {g}: 6/6 in \d+s \(\d+ tok/s\)",
                 )]  # fmt: skip
        assert sum(m is not None for m in found) >= 3, (group, out)
    # Progress lines stand alone: never glued to pytest's results, nor results to them.
    progress = [line for line in out if "xsafety: generat" in line]
    assert all(re.match(prefix + "xsafety: ", line) for line in progress), progress
    results = [line for line in out if re.fullmatch(r"(test_suite\.py )?[.x]+( +\[100%\])?", line)]
    assert "".join(re.sub(r"test_suite\.py |\s|\[100%\]", "", r) for r in results) == "." * 12
    if not mode:
        # Serial: pytest's line of results restarts with the file's name after them.
        assert all(r.startswith("test_suite.py ") for r in results), results
    else:
        assert any(line.startswith("[gw") for line in progress)


def test_a_failing_prompt_errors_alone_and_the_run_completes(
    pytester: pytest.Pytester, mode: list[str]
) -> None:
    log = pytester.path / "generated.log"
    setup(pytester, refuse="poison|break into|stolen")
    pytester.makefile(
        ".toml",
        pyproject='[tool.xsafety.models.fake]\nbackend = "fake"\n'
        f'options = {{ refuse = "poison|break into|stolen", fail = "garlic", max_batch = "4",'
        f' log = "{log}" }}\n',
    )
    result = run(pytester, mode)
    # The batch of 6 is too big (simulated OOM), halves are retried, the garlic prompt
    # fails even alone: it errors with the cause; every other case gets its verdict.
    result.assert_outcomes(passed=5, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*xsafety: fake/baseline: out of memory on a batch of 6 prompts: retried in halves "
            "of 3; the group's later batches at most 3",
            "fake/baseline/homonyms/2: errored: RuntimeError; the xsafety summary names the cause",
            "fake/baseline: 1 case(s) errored: RuntimeError: injected fault*",
        ]
    )
    assert result.ret == 1
    # The five good responses are cached; a rerun tries only the failed one.
    before = len(lines(log))
    run(pytester, mode).assert_outcomes(passed=5, errors=1)
    assert len(lines(log)) == before


def test_empty_and_truncated_responses_are_labelled_and_counted(
    pytester: pytest.Pytester,
) -> None:
    setup(pytester, refuse="poison|break into|stolen")
    pytester.makefile(
        ".toml",
        pyproject='[tool.xsafety.models.fake]\nbackend = "fake"\n'
        'options = { refuse = "poison|break into|stolen", partial = "garlic", '
        'partial_text = "   " }\n',
    )
    result = run(pytester, [], "--xsafety-max-new-tokens", "5")
    # The empty answer to a safe prompt is a refusal under the default classifier's
    # documented rule: an xfail within no budget, counted in the summary.
    result.assert_outcomes(passed=5, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "responses: 1 empty response(s) (labelled by the classifier's empty-response rule);"
            " 5 response(s) cut at the token limit",
            "XFAIL*fake/baseline/homonyms/2*full_refusal of a safe prompt*(empty response)*",
        ]
    )


def test_study_table_takes_baseline_from_the_cache(pytester: pytest.Pytester) -> None:
    log = setup(pytester, refuse="^How do I shut|poison|break into|stolen")
    cache = ["--xsafety-cache-dir", str(pytester.path / "cache")]
    run(pytester, [], *cache).assert_outcomes(passed=5, xfailed=1)
    result = run(pytester, [], *cache, "--xsafety-strategy", "contextual")
    result.stdout.fnmatch_lines(
        [
            "*strategies against baseline*baseline from the response cache*",
            "fake*baseline*33.3%*0.0%*(baseline)*(baseline)",
            "fake*contextual*0.0%*0.0%*-100.0% rel.*+0.0 pts",
        ]
    )
    assert len(lines(log)) == 12  # baseline was not generated again
    # Without a cached baseline there is no study table.
    fresh = run(pytester, [], "--xsafety-strategy", "contextual", "--xsafety-cache-dir", "other")
    assert "strategies against baseline" not in fresh.stdout.str()
