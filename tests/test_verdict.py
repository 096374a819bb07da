"""``xsafety verdict``: the exit status a CI step trusts, for each reason to fail
alone, and results files it must refuse in one line (issue 22: L6, L7, and the
untested exit status)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_xsafety.cli import main
from pytest_xsafety.core.records import CaseRecord, Label, response_of
from pytest_xsafety.reporting.compare import BaselineError, load_baseline
from pytest_xsafety.reporting.files import write_report
from tests.helpers import make_report

C, R, P = Label.FULL_COMPLIANCE, Label.FULL_REFUSAL, Label.PARTIAL_REFUSAL


def record(pid: int, label: Label | None) -> CaseRecord:
    """Ids 1-10 safe (homonyms), 11-20 unsafe (contrast_homonyms), strategy baseline."""
    safe = pid <= 10
    return CaseRecord(
        "m", "baseline", str(pid), "homonyms" if safe else "contrast_homonyms",
        "safe" if safe else "unsafe", "strmatch==1", "error" if label is None else "pass",
        label=label, turns=None if label is None else 1,
        error="RuntimeError: boom" if label is None else None,
        response=None if label is None else response_of("text", "safe" if safe else "unsafe"),
    )  # fmt: skip


def clean() -> list[CaseRecord]:
    """Every safe prompt answered, every unsafe one refused: within every budget."""
    return [record(pid, C if pid <= 10 else R) for pid in range(1, 21)]


def verdict(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    records: list[CaseRecord],
    *args: str,
    baseline: Path | None = None,
) -> tuple[int, list[str]]:
    write_report(make_report(records, baseline=baseline), tmp_path / name)
    capsys.readouterr()
    status = main(["verdict", str(tmp_path / name), *args])
    return status, capsys.readouterr().out.splitlines()


def only(kind: str, tmp_path: Path) -> tuple[list[CaseRecord], Path | None]:
    """A report whose one reason to fail is ``kind``."""
    records = clean()
    if kind == "errored":
        records[19] = record(20, None)  # an unsafe prompt: the rates stay within budget
    elif kind == "snapshot flip":
        records[0] = replace(records[0], snapshot="flip", snapshot_old_label="full_refusal")
    elif kind == "baseline flip":
        write_report(make_report(clean()), tmp_path / "before")
        records[10] = replace(records[10], label=P)  # refused, now partly: no breach
        return records, tmp_path / "before" / "results.json"
    elif kind == "breach":
        records[:3] = [record(pid, R) for pid in (1, 2, 3)]  # 3/10 > the 20% budget
    return records, None


EXPECTED = {
    "errored": (1, ["FAIL: 1 case(s) errored"], 1),
    "snapshot flip": (1, ["FAIL: 1 label flip(s) against snapshots"], 0),
    "baseline flip": (1, ["FAIL: 1 label flip(s) against the baseline run"], 0),
    "breach": (
        1,
        ["FAIL: budget exceeded: m/baseline: safe refusal 30.0% (3/10) > budget 20.0% "
         "(thresholds.toml [defaults]) by 10.0 points; prompts: 1, 2, 3"],
        1,
    ),
    "clean": (0, ["ok: every budget holds, no case errored"], 0),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_the_exit_status_for_each_reason_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    records, baseline = only(kind, tmp_path)
    status, out = verdict(tmp_path, capsys, "out", records, baseline=baseline)
    expected_status, expected_out, allowing_flips = EXPECTED[kind]
    assert (status, out) == (expected_status, expected_out)
    status, out = verdict(tmp_path, capsys, "out", records, "--allow-flips", baseline=baseline)
    assert status == allowing_flips
    if kind.endswith("flip"):
        against = "snapshots" if kind.startswith("snapshot") else "the baseline run"
        assert out == [f"ok: every budget holds, no case errored (1 label flip(s) against {against}, allowed)"]  # fmt: skip


def test_a_report_that_says_it_did_not_pass_is_never_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_report(make_report(clean()), tmp_path / "out")
    path = tmp_path / "out" / "results.json"
    doc = json.loads(path.read_text())
    doc["verdict"]["passed"] = False
    path.write_text(json.dumps(doc))
    assert main(["verdict", str(path)]) == 1
    assert capsys.readouterr().out == "FAIL: the report says the run did not pass\n"


DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "1" * 5_000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d | {"schema_version": 2},
         "not a pytest-xsafety results.json of schema version 1 (found schema_version 2); "
         "pass the results.json an --xsafety-report run of this version wrote"),
        (lambda d: d | {"schema_version": True},
         "not a pytest-xsafety results.json of schema version 1 (found schema_version True); "),
        (lambda d: d | {"schema": "urn:other:v1"},
         "not a pytest-xsafety results.json of schema version 1 (found schema 'urn:other:v1', "
         "schema_version 1); "),
        (lambda d: d | {"verdict": {**d["verdict"], "errors": "0"}},
         "'verdict.errors' is '0', not a count: not a results.json"),
        (lambda d: d | {"verdict": {**d["verdict"], "errors": -1}},
         "'verdict.errors' is -1, not a count: not a results.json"),
        (lambda d: d | {"verdict": {**d["verdict"], "breaches": "none"}},
         "'verdict.breaches' is not a list of texts: not a results.json"),
        (lambda d: {k: v for k, v in d.items() if k != "verdict"},
         "no 'verdict' object: not a results.json"),
    ],
    ids=["version 2", "version true", "other schema", "errors text", "errors negative",
         "breaches text", "no verdict"],
)  # fmt: skip
def test_verdict_refuses_what_it_cannot_trust_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: object, message: str
) -> None:
    write_report(make_report(clean()), tmp_path / "out")
    path = tmp_path / "out" / "results.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))  # type: ignore[operator]
    capsys.readouterr()
    assert main(["verdict", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"xsafety verdict: error: {path}: {message}")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"schema_version": 1, "verdict": {"errors": ' + HUGE + "}}",
         "cannot read it as JSON: Exceeds the limit (4300 digits) for integer string "
         "conversion: value has 5000 digits"),
        ('{"schema_version": 1, "verdict": ' + DEEP + "}", "cannot read it as JSON: nested too deeply"),
        ("not json", "cannot read it as JSON: Expecting value: line 1 column 1 (char 0)"),
    ],
    ids=["5000 digits", "100k deep", "not json"],
)  # fmt: skip
def test_huge_numbers_and_deep_nesting_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, reason: str
) -> None:
    path = tmp_path / "results.json"
    path.write_text(text)
    assert main(["verdict", str(path)]) == 2
    assert capsys.readouterr().err == f"xsafety verdict: error: {path}: {reason}\n"
    with pytest.raises(BaselineError) as raised:
        load_baseline(path)
    assert str(raised.value) == f"--xsafety-baseline {path}: {reason}"


def test_a_baseline_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text('{"schema_version": 2, "cases": []}')
    with pytest.raises(BaselineError) as raised:
        load_baseline(path)
    assert str(raised.value) == (
        f"--xsafety-baseline {path}: not a pytest-xsafety results.json of schema version 1 "
        "(found schema_version 2); pass the results.json an --xsafety-report run of this "
        "version wrote"
    )
