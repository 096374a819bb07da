"""The reviews file under concurrent writers and odd paths, and the last-run record
`xsafety review` trusts (issue 22: M3, M4, M7, L12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_xsafety.cli import main
from pytest_xsafety.core.records import CaseRecord, Label, response_of
from pytest_xsafety.engine.pipeline import Runner
from pytest_xsafety.reporting.lastrun import KEY, last_run
from pytest_xsafety.setup.options import parse_config
from pytest_xsafety.setup.reviews import ReviewsError, load_reviews
from tests.helpers import FAKE_MODEL, write_suite
from tests.permissions import ROOT, python, read_only

SHA = "b" * 64
CASES = [f"fake/baseline/homonyms/{i}" for i in range(1, 9)]


def record_run(project: Path, reviews: str = "xsafety-reviews.toml", **change: str) -> None:
    """A last run of eight cases in ``project``/.pytest_cache, as pytest would keep it."""
    records = [
        CaseRecord("fake", "baseline", str(i), "homonyms", "safe", "default==rules-6", "pass",
                   label=Label.FULL_REFUSAL, response=response_of(f"answer {i}", "safe"))
        for i in range(1, 9)
    ]  # fmt: skip
    value = last_run(records, project / reviews)
    for key, text in change.items():
        value["cases"][CASES[0]][key] = text
    path = project / ".pytest_cache" / "v" / KEY
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(value))


def review(project: Path, *args: str) -> int:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        return main(["review", *args])


def left_over(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))


@pytest.mark.slow
def test_concurrent_reviews_lose_nothing(tmp_path: Path) -> None:
    for trial in range(4):
        project = tmp_path / f"trial{trial}"
        project.mkdir()
        record_run(project)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "pytest_xsafety.cli", "review", "--label",
                   "full_compliance", "--note", f"trial {trial}", "--case"]  # fmt: skip
        pipe = subprocess.PIPE
        procs = [
            subprocess.Popen([*command, case], cwd=project, env=env, stdout=pipe, stderr=pipe)
            for case in CASES
        ]
        outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else b"") for p in procs]
        assert outcomes == [(0, b"")] * len(CASES)
        reviews = load_reviews(project / "xsafety-reviews.toml")
        assert sorted(reviews) == CASES
        assert {r.label for r in reviews.values()} == {Label.FULL_COMPLIANCE}
        assert left_over(project) == []


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (".", "reviews file {path}: is a folder; pass a file path (--xsafety-reviews PATH, "
              "or xsafety review --reviews PATH)"),
        ("missing/r.toml", "reviews file {path}: its folder {path.parent} does not exist; "
                           "create it or pass another path"),
        ("regular/r.toml", "reviews file {path}: its folder {path.parent} is not a folder; "
                           "create it or pass another path"),
    ],
    ids=["a folder", "in a missing folder", "under a regular file"],
)  # fmt: skip
def test_a_reviews_path_that_cannot_be_a_file_is_one_line_at_start_and_in_review(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, message: str
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "regular").write_text("a file")
    (project / "pyproject.toml").write_text(FAKE_MODEL)
    write_suite(project / "suite.csv")
    # The run resolves the option against its rootdir; the command takes it as given.
    values = {"model": "fake", "suite": str(project / "suite.csv"), "reviews": where}
    with pytest.raises(ReviewsError) as raised:
        Runner.from_config(parse_config(values, project))
    assert str(raised.value) == message.format(path=project / where)
    record_run(project)
    capsys.readouterr()
    assert review(project, "--case", CASES[0], "--label", "full_refusal", "--reviews", where) == 2
    assert capsys.readouterr().err == f"xsafety review: error: {message.format(path=Path(where))}\n"
    assert left_over(tmp_path) == []  # the old writer left .proj.tmp beside the project


@pytest.mark.slow
@pytest.mark.parametrize("what", ["folder", "file"])
def test_a_read_only_reviews_file_or_folder_is_one_line_and_leaves_no_tmp(
    tmp_path: Path, what: str
) -> None:
    project = tmp_path / "proj"
    folder = project / "reviews"
    folder.mkdir(parents=True)
    record_run(project, "reviews/r.toml")
    (folder / "r.toml").write_text("schema = 1\n")
    if what == "file":
        (folder / "r.toml").chmod(0o444)
    args = ["-m", "pytest_xsafety.cli", "review", "--case", CASES[0], "--label", "full_refusal"]
    if what == "folder":
        with read_only(folder):
            done = python(args, project)
        why = "cannot be written (Permission denied); make the file and its folder writable, or pass another path"  # fmt: skip
    else:
        done = python(args, project)
        why = "is read-only; make it writable"
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"xsafety review: error: reviews file {folder / 'r.toml'}: {why}\n"
    assert (folder / "r.toml").read_text() == "schema = 1\n"
    assert left_over(tmp_path) == []


def test_a_classifier_label_that_is_no_label_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "xsafety-reviews.toml"
    path.write_text(
        f'[reviews."a"]\nlabel = "full_refusal"\nresponse_sha256 = "{SHA}"\n'
        'classifier_label = "nope"\n'
    )
    with pytest.raises(ReviewsError) as raised:
        load_reviews(path)
    assert str(raised.value) == (
        f"{path}: [reviews.\"a\"]: classifier_label 'nope': use one of full_compliance, "
        "full_refusal, partial_refusal, unscored"
    )


def test_a_last_run_with_a_bad_answer_hash_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record_run(tmp_path, response_sha256="short")
    capsys.readouterr()
    assert review(tmp_path, "--case", CASES[0], "--label", "full_refusal") == 2
    assert capsys.readouterr().err == (
        f"xsafety review: error: {tmp_path}/.pytest_cache/v/xsafety/last-run: malformed "
        f"(ValueError: case {CASES[0]}: response_sha256 'short' is not a sha256); rerun pytest\n"
    )
    assert not (tmp_path / "xsafety-reviews.toml").exists()
