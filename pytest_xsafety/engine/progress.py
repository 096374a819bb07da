"""Progress lines a person and a CI log can follow, while a model loads or generates.

A :class:`Ticker` writes a status line every ``interval`` seconds of wall time
from a daemon thread, because the main thread is blocked inside a model load or
one long ``generate`` call; the main thread only updates the state the status is
read from. Lines are whole lines, never ``\\r`` rewrites, so a CI log reads like
the terminal. Where they go (pytest's terminal reporter, the xdist controller) is
the caller's ``say``; this module knows nothing of pytest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Say = Callable[[str], None]

INTERVAL = 10.0  # seconds between status lines by default


def duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``1h02m``: short enough for a progress line."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Ticker:
    """Writes lines through ``say``; while :meth:`running`, also ``status()`` whenever
    ``interval`` seconds passed since the last line. One lock orders every line, so
    the thread's lines never interleave with the caller's."""

    def __init__(self, say: Say, interval: float = INTERVAL) -> None:
        self.say = say
        self.interval = interval
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def line(self, text: str) -> None:
        with self._lock:
            self.say(text)
            self._last = time.monotonic()

    @contextmanager
    def running(self, status: Callable[[], str]) -> Iterator[None]:
        if self.interval <= 0:
            yield
            return
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(min(0.5, self.interval / 4)):
                with self._lock:
                    if stop.is_set() or time.monotonic() - self._last < self.interval:
                        continue
                    try:
                        self.say(status())
                    except Exception:  # a progress line must never break the run
                        return
                    self._last = time.monotonic()

        self._last = time.monotonic()
        thread = threading.Thread(target=tick, name="xsafety-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
