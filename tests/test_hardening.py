"""Hardening: random input files give a run or a clean error; interruptions lose
no finished batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import FAKE_MODEL, HEADER, TINY_ROWS, try_config, write_suite

# Pieces that make random files likely to get past the first parse, so the fuzz
# reaches the deeper checks too.
TOML_KEYS = st.sampled_from(
    ["safe_refusal_max", "unsafe_compliance_max", "safe_refusl_max", "defaults", "models",
     "fake", "strategies", "types", "baseline", "homonyms", "nope", "x"]
)  # fmt: skip
TOML_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-3, 3).map(str),
    st.sampled_from(['"0.1"', "true", "[]", "{}", "0.5", "1e9", "-0.0"]),
)
TOML_LINE = st.one_of(
    st.builds(lambda k, v: f"{k} = {v}", TOML_KEYS, TOML_VALUES),
    st.lists(TOML_KEYS, min_size=1, max_size=4).map(lambda ks: "[" + ".".join(ks) + "]"),
    st.text(max_size=20),
)
CSV_CELL = st.one_of(
    st.sampled_from(["1", "2", "1", "safe", "unsafe", "homonyms", "contrast_homonyms", ""]),
    st.text(max_size=12),
)
CSV_ROW = st.lists(CSV_CELL, min_size=0, max_size=7).map(lambda cells: ",".join(cells))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    thresholds=st.lists(TOML_LINE, max_size=8).map("\n".join),
    rows=st.lists(CSV_ROW, max_size=6),
    keep_header=st.booleans(),
)
def test_random_thresholds_and_suites_run_or_fail_cleanly(
    tmp_path_factory: pytest.TempPathFactory, thresholds: str, rows: list[str], keep_header: bool
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "pyproject.toml").write_text(FAKE_MODEL)
    (root / "thresholds.toml").write_text(thresholds)
    (root / "suite.csv").write_text((HEADER if keep_header else "") + "\n".join(rows))
    try_config(root)  # any other exception fails the test with its traceback


@settings(max_examples=60, deadline=None)
@given(
    safe=st.floats(allow_nan=True, allow_infinity=True),
    unsafe=st.floats(allow_nan=True, allow_infinity=True),
)
def test_rates_outside_zero_one_are_rejected(safe: float, unsafe: float) -> None:
    from pytest_xsafety.setup.thresholds import ThresholdsError, parse_thresholds

    text = f"[defaults]\nsafe_refusal_max = {safe!r}\nunsafe_compliance_max = {unsafe!r}\n"
    if all(0 <= v <= 1 for v in (safe, unsafe)):
        parse_thresholds(text, "thresholds.toml")
    else:
        with pytest.raises(ThresholdsError, match=r"thresholds\.toml"):
            parse_thresholds(text, "thresholds.toml")


def test_a_valid_random_looking_setup_runs(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(FAKE_MODEL)
    (tmp_path / "thresholds.toml").write_text("[defaults]\nsafe_refusal_max = 0.5\n")
    write_suite(tmp_path / "suite.csv", TINY_ROWS)
    assert try_config(tmp_path) == "ok"


# --- interruption -------------------------------------------------------------

SUITE_TEST = "def test_xsafety(xsafety_case):\n    xsafety_case.check()\n"


def _project(root: Path, log: Path, delay: float) -> list[str]:
    (root / "pyproject.toml").write_text(
        '[tool.xsafety.models.fake]\nbackend = "fake"\n'
        f'options = {{ refuse = "poison", delay = "{delay}", log = "{log}" }}\n'
    )
    (root / "test_suite.py").write_text(SUITE_TEST)
    # Budgets the fake holds (it answers two of the three unsafe prompts): this test is
    # about resuming, and a run without budgets fails.
    (root / "thresholds.toml").write_text(
        "[defaults]\nsafe_refusal_max = 0.5\nunsafe_compliance_max = 1.0\n"
    )
    write_suite(root / "suite.csv")
    return [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
        "--xsafety-model", "fake", "--xsafety-suite", "suite.csv",
        "--xsafety-batch-size", "1", "--xsafety-cache-dir", str(root / "cache"),
    ]  # fmt: skip


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _wait_for(log: Path, n: int, proc: subprocess.Popen[bytes], limit: float = 60) -> None:
    end = time.monotonic() + limit
    while len(_lines(log)) < n:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < end, "the run never got going"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_an_interrupted_run_keeps_finished_batches_and_resumes(
    tmp_path: Path, sig: signal.Signals
) -> None:
    log = tmp_path / "generated.log"
    cmd = _project(tmp_path, log, delay=0.4)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE)
    _wait_for(log, 2, proc)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    finished = _lines(log)
    assert 2 <= len(finished) < 6
    # The rerun generates only what the interrupted run had not finished.
    rerun = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    assert "4 passed, 2 xfailed" in rerun.stdout
    regenerated = _lines(log)[len(finished) :]
    every = {f"fake\t{prompt}" for _, prompt, _, _ in TINY_ROWS}  # what the fake logs
    assert set(finished) <= every
    # The rerun generates every prompt the interrupted run had not finished ...
    assert set(regenerated) >= every - set(finished)
    # ... and again at most the batch in flight when the signal came (batch size 1).
    assert len(set(regenerated) & set(finished)) <= 1
    assert len(regenerated) <= 6 - len(finished) + 1
