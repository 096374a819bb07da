"""Read-only folders in tests that also run as root (CI runs as root, and root writes
into a folder whatever its mode): the step under test runs in a subprocess as root
without its capabilities (``setpriv --bounding-set=-all``), which obeys mode bits."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def _setpriv_works() -> bool:
    if shutil.which("setpriv") is None:
        return False
    done = subprocess.run(["setpriv", "--bounding-set=-all", "true"], capture_output=True)
    return done.returncode == 0


def bound_by_permissions(argv: Sequence[str]) -> list[str]:
    """``argv`` as a command that file permissions bind, as root too."""
    if os.geteuid() != 0:
        return list(argv)
    if not _setpriv_works():
        pytest.skip("root without a working setpriv: a read-only folder cannot be made")
    return ["setpriv", "--bounding-set=-all", *argv]


def python(
    code_or_args: Sequence[str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in ``cwd``, bound by permissions, importing this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        bound_by_permissions([sys.executable, *code_or_args]),
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` (created) without write permission while the block runs."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)
