"""The end of a run: a JUnit file that cannot be written, Ctrl-C while the report is
written, and a report folder inside the snapshots (issue 22: M2, L8, L11)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.figure
import pytest
import statsmodels.stats.proportion

from tests.helpers import TEST_FILE, write_suite
from tests.permissions import python, read_only

# In-process pytester runs drop the modules first imported in them, and numpy's C
# extensions cannot load twice, so the report's libraries load here.
_LOADED = (matplotlib.figure, statsmodels.stats.proportion)

FAKE = '[tool.xsafety.models.fake]\nbackend = "fake"\noptions = {{ refuse = "poison", log = "{log}" }}\n'  # fmt: skip
ARGS = ["--xsafety-model=fake", "--xsafety-suite=suite.csv", "--xsafety-cache-dir=cache",
        "-p", "no:cacheprovider"]  # fmt: skip


def project(pytester: pytest.Pytester) -> Path:
    log = pytester.path / "generated.log"
    pytester.makefile(".toml", pyproject=FAKE.format(log=log))
    pytester.makepyfile(test_suite=TEST_FILE)
    write_suite(pytester.path / "suite.csv")
    return log


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# M2: --junitxml where it cannot be written -----------------------------------------


def test_a_junit_path_under_a_regular_file_is_a_usage_error_at_start(
    pytester: pytest.Pytester,
) -> None:
    log = project(pytester)
    (pytester.path / "regular").write_text("a file")
    result = pytester.runpytest(*ARGS, "--junitxml=regular/j.xml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.errlines == [
        f"ERROR: pytest-xsafety: --junitxml=regular/j.xml: {pytester.path}/regular is a "
        "file, not a folder; pass another path",
        "",
    ]
    assert not log.exists()  # nothing generated


@pytest.mark.slow
def test_a_junit_path_in_a_read_only_folder_is_a_usage_error_at_start(
    pytester: pytest.Pytester,
) -> None:
    log = project(pytester)
    with read_only(pytester.path / "ro"):
        done = python(["-m", "pytest", *ARGS, "--junitxml=ro/j.xml"], pytester.path)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert done.stderr.splitlines() == [
        f"ERROR: pytest-xsafety: --junitxml=ro/j.xml: cannot write into {pytester.path}/ro "
        "(Permission denied); make it writable or pass another path",
        "",
    ]
    assert "Traceback" not in done.stdout + done.stderr
    assert not log.exists()


# Replaces the JUnit file's folder with a regular file just before junitxml writes.
BREAK_JUNIT = """
import shutil
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree("junit")
        open("junit", "w").close()
"""


def test_a_junit_file_that_fails_at_the_end_is_one_line_and_the_report_is_written(
    pytester: pytest.Pytester, mode: list[str]
) -> None:
    project(pytester)
    pytester.makeconftest(BREAK_JUNIT)
    result = pytester.runpytest(*ARGS, *mode, "--junitxml=junit/j.xml", "--xsafety-report=out")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text
    result.stdout.fnmatch_lines(
        ["xsafety: WARNING: --junitxml=junit/j.xml: not written (*File exists*junit*)",
         "xsafety: report in out: summary.md, results.json*"]
    )  # fmt: skip
    doc = json.loads((pytester.path / "out" / "results.json").read_text())
    assert len(doc["cases"]) == 6


# L8: Ctrl-C while the report is written --------------------------------------------

# Sends the process SIGINT while the report's plots are drawn (before the files move
# into place), or while the first file moves, as XSAFETY_TEST_INTERRUPT says.
INTERRUPT = """
import os
import signal
import pytest_xsafety.reporting.plots as plots
import pytest_xsafety.setup.outputs as outputs

when = os.environ.get("XSAFETY_TEST_INTERRUPT")
if when == "drawing":
    drawn = plots.tradeoff_plot

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return drawn(*args, **kwargs)

    plots.tradeoff_plot = interrupted
elif when == "moving":
    class Os:
        def __getattr__(self, name):
            return getattr(os, name)

        def replace(self, src, dst):
            os.kill(os.getpid(), signal.SIGINT)
            os.replace(src, dst)

    outputs.os = Os()
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("when", "line"),
    [("drawing", "the previous report is whole"), ("moving", "this run's report is whole")],
)
def test_ctrl_c_while_the_report_is_written_is_one_line_and_exit_2(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, when: str, line: str
) -> None:
    project(pytester)
    pytester.makeconftest(INTERRUPT)
    # Budgets do not matter here: what is gated is the report's writing.
    first = pytester.runpytest_subprocess(
        *ARGS, "--xsafety-report=out", "--xsafety-allow-no-budget"
    )
    assert first.ret == pytest.ExitCode.OK
    before = files_under(pytester.path / "out")
    pytester.makefile(".toml", thresholds="[defaults]\nsafe_refusal_max = 0.5\n")  # new content
    monkeypatch.setenv("XSAFETY_TEST_INTERRUPT", when)
    result = pytester.runpytest_subprocess(
        *ARGS, "--xsafety-report=out", "--xsafety-allow-no-budget"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text
    assert "KeyboardInterrupt" not in text
    assert text.count("interrupted while writing the report") == 1
    result.stdout.fnmatch_lines([f"xsafety: WARNING: interrupted while writing the report; {line}"])
    after = files_under(pytester.path / "out")
    assert sorted(after) == sorted(before)  # a whole set, no temporary folder
    summary = after["summary.md"].decode()
    assert ("safe_refusal_max" in summary or "50.0%" in summary) == (when == "moving")


# A fault in the plugin's own report step still lets junitxml write its file.
BREAK_REPORT = """
import pytest_xsafety.session.session as session

def broken(*args, **kwargs):
    raise RuntimeError("report step broke")

session.build_report = broken
"""


@pytest.mark.slow
def test_a_fault_in_the_report_step_leaves_the_junit_file_written(
    pytester: pytest.Pytester,
) -> None:
    project(pytester)
    pytester.makeconftest(BREAK_REPORT)
    result = pytester.runpytest_subprocess(*ARGS, "--junitxml=j.xml")
    assert result.ret != pytest.ExitCode.OK  # the fault is raised, not hidden
    assert "RuntimeError: report step broke" in result.stdout.str() + result.stderr.str()
    assert (pytester.path / "j.xml").read_text().count("<testcase ") == 6


# L11: a report folder inside the snapshots ------------------------------------------


@pytest.mark.parametrize(
    "report", ["snapshots/fake/baseline", "snapshots", "snapshots/reports/today"]
)
def test_a_report_inside_the_snapshot_folder_is_refused_at_start(
    pytester: pytest.Pytester, report: str
) -> None:
    log = project(pytester)
    pytester.runpytest(*ARGS, "--snapshot-update").assert_outcomes(passed=4, xfailed=2)
    recorded = files_under(pytester.path / "snapshots")
    result = pytester.runpytest(*ARGS, "--snapshot-update", f"--xsafety-report={report}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.errlines == [
        f"ERROR: pytest-xsafety: --xsafety-report={report}: inside the snapshot folder "
        "snapshots, where its files would count as unused snapshots (--snapshot-update "
        "deletes them); pass a folder outside it",
        "",
    ]
    assert files_under(pytester.path / "snapshots") == recorded
    assert len(log.read_text().splitlines()) == 6  # the first run's generation only
