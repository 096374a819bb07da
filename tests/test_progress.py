"""Progress lines: a ticker that speaks at least every interval, never over itself."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from pytest_xsafety.engine.pipeline import Runner
from pytest_xsafety.engine.progress import Ticker, duration
from pytest_xsafety.setup.options import parse_config


def test_duration() -> None:
    assert [duration(s) for s in (0.4, 59, 61, 3599, 3725)] == [
        "0s", "59s", "1m01s", "59m59s", "1h02m",
    ]  # fmt: skip


def test_ticker_speaks_every_interval_while_running_and_never_after() -> None:
    lines: list[tuple[float, str]] = []
    ticker = Ticker(lambda line: lines.append((time.monotonic(), line)), interval=0.1)
    start = time.monotonic()
    with ticker.running(lambda: "busy"):
        time.sleep(0.65)
    ticker.line("done")
    after = len(lines)
    time.sleep(0.3)
    assert len(lines) == after  # the thread stopped
    busy = [t for t, line in lines if line == "busy"]
    assert 3 <= len(busy) <= 7
    gaps = [b - a for a, b in zip([start, *busy], busy, strict=False)]
    assert all(g >= 0.09 for g in gaps)
    assert max(gaps) < 0.35
    assert lines[-1][1] == "done"


def test_a_line_resets_the_interval_and_lines_never_overlap() -> None:
    inside = threading.Event()
    overlaps: list[str] = []
    lines: list[str] = []

    def say(line: str) -> None:
        if inside.is_set():
            overlaps.append(line)
        inside.set()
        time.sleep(0.01)
        lines.append(line)
        inside.clear()

    ticker = Ticker(say, interval=0.2)
    with ticker.running(lambda: "status"):
        for i in range(8):
            ticker.line(f"event {i}")  # every 0.05 s: the ticker never needs to speak
            time.sleep(0.05)
    assert overlaps == []
    assert lines == [f"event {i}" for i in range(8)]


def test_interval_zero_only_explicit_lines() -> None:
    lines: list[str] = []
    ticker = Ticker(lines.append, interval=0)
    with ticker.running(lambda: "status"):
        time.sleep(0.05)
    ticker.line("end")
    assert lines == ["end"]


def test_busy_xdist_workers_share_the_cores(tmp_path: Path, tiny_suite: Path) -> None:
    # One model x strategy group for two workers: one worker idles, so the busy one
    # gets every core; two groups: half each.
    (tmp_path / "pyproject.toml").write_text('[tool.xsafety.models.f]\nbackend = "fake"\n')
    config = parse_config({"model": "f", "suite": str(tiny_suite)}, tmp_path)
    cores = os.cpu_count() or 1
    runner = Runner.from_config(config, worker=0, workers=2)
    one = runner.cases()
    runner.verdict(one[0], one)
    assert runner.load_runtime().threads == cores
    two = Runner.from_config(config, worker=0, workers=2)
    two._busy_workers = 2
    assert two.load_runtime().threads == max(1, cores // 2)
    assert Runner.from_config(config).load_runtime().threads is None  # serial: torch decides
