"""Where a run writes: checked before the first model loads, and report files
written as one set.

A folder the run cannot write into (the response cache, the snapshot folder under
``--snapshot-update``, the report) is a usage error at configure time, not a
traceback per case or a lost report after an hour of generation. Report files are
written into a temporary folder inside the report folder and moved into place
together, with Ctrl-C held off during the moves, so an interrupted run never
leaves one run's ``summary.md`` beside another's ``results.json``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType

from pytest_xsafety.setup.options import ConfigError


def check_folder(path: Path, what: str, files: Iterable[str] = ()) -> None:
    """Create ``path`` if needed and prove a file can be made in it; each name in
    ``files`` that exists there must be a file the run may replace."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what}={path}: is a file, not a folder; pass a folder")
    try:
        _probe(path)
    except OSError as exc:
        raise ConfigError(
            f"{what}={path}: cannot write there ({exc.strerror}); make it writable or pass "
            "another folder"
        ) from None
    for name in files:
        target = path / name
        if target.is_dir():
            raise ConfigError(f"{what}={path}: {name} is a folder; remove it or pick another")
        if target.exists() and not os.access(target, os.W_OK):
            raise ConfigError(f"{what}={path}: {name} is read-only; make it writable")


def check_file(path: Path, what: str) -> None:
    """``path`` is a file the run can write at the end: not a folder, not read-only,
    in a folder that can be made and written (``what``: the option and its value)."""
    if path.is_dir():
        raise ConfigError(f"{what}: is a folder; pass a file path")
    blocked = next((p for p in path.parents if p.exists()), None)
    if blocked is not None and not blocked.is_dir():
        raise ConfigError(f"{what}: {blocked} is a file, not a folder; pass another path")
    try:
        _probe(path.parent)
    except OSError as exc:
        raise ConfigError(
            f"{what}: cannot write into {path.parent} ({exc.strerror}); make it writable "
            "or pass another path"
        ) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{what}: the file is read-only; make it writable")


def _probe(folder: Path) -> None:
    """Create ``folder`` if needed and make (and remove) a file in it."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".xsafety-probe-")
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold SIGINT (Ctrl-C) until the block ends, then raise KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread
        return
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if caught:
        raise KeyboardInterrupt


class MovedThenInterrupted(KeyboardInterrupt):
    """Ctrl-C came while the new files moved into place: they all moved first."""


def write_together(directory: Path, write: Callable[[Path], list[str]]) -> list[Path]:
    """``write(tmp)`` makes the files (returning their names) in a temporary folder
    inside ``directory``; they then replace the old ones together. Ctrl-C before the
    moves leaves the old set (KeyboardInterrupt); during them, the new one
    (:class:`MovedThenInterrupted`)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=".xsafety-tmp-"))
    try:
        names = write(tmp)
        try:
            with interrupts_held():
                for name in names:
                    os.replace(tmp / name, directory / name)
        except KeyboardInterrupt:
            raise MovedThenInterrupted from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [directory / name for name in names]
