"""Shared fixtures: the XSTest copy, a tiny suite, and the serial / ``-n 2`` modes
end-to-end tests run in. Tests that run pytest in pytest (``pytester``) or a
subprocess are marked ``slow``: ``pytest tests -m "not slow"`` is the fast tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_xsafety.core import secrets
from tests.fault_server import FaultServer, serve
from tests.helpers import SHARED, write_suite


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        slow = "pytester" in getattr(item, "fixturenames", ())
        if slow or item.get_closest_marker("real_model") is not None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _secrets_of_this_test(monkeypatch: pytest.MonkeyPatch) -> None:
    # The process's secrets are kept for its life; a test's (a canary key, a URL
    # user) must not be scrubbed from the next test's output.
    monkeypatch.setattr(secrets, "_known", secrets._known)


@pytest.fixture
def xstest_csv() -> Path:
    path = SHARED / "xstest_prompts.csv"
    if not path.is_file():
        pytest.skip(f"XSTest copy not found at {path}")
    return path


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    return write_suite(tmp_path / "tiny.csv")


@pytest.fixture(params=[[], ["-n", "2"]], ids=["serial", "xdist"])
def mode(request: pytest.FixtureRequest) -> list[str]:
    return list(request.param)


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """An OpenAI-compatible server on 127.0.0.1 that misbehaves as the test scripts it."""
    with serve(FaultServer()) as server:
        yield server
