"""Where progress lines go: pytest's terminal, a line of their own, never glued to
a line of test results; under xdist, from each worker to the controller.

The engine's :class:`~pytest_xsafety.engine.progress.Ticker` decides when a line
is due; this module only writes it. A worker sends its lines over an execnet
channel the controller opened for it (``pytest_configure_node``), and the
controller prints them from its main loop, between test reports.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import pytest

from pytest_xsafety.core.secrets import scrub

PROGRESS_CHANNEL = "xsafety_progress_channel"  # an execnet channel in xdist's workerinput


class ProgressLines:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._line_broken = False  # progress lines were written inside a line of results

    def say(self, line: str) -> None:
        """A progress line: a worker sends it to the controller, which prints it."""
        line = scrub(line)
        workerinput: dict[str, Any] | None = getattr(self.config, "workerinput", None)
        channel = (workerinput or {}).get(PROGRESS_CHANNEL)
        if channel is not None:
            channel.send(line)
            return
        with self._uncaptured():
            if workerinput is not None:  # a worker without the controller's channel
                sys.stderr.write(f"[{workerinput['workerid']}] {line}\n")
                sys.stderr.flush()
                return
            self.write_line(line)

    def write_line(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        # A line of its own: end pytest's line of dots first (pytest restarts it after).
        reporter.ensure_newline()
        writer = getattr(reporter, "_tw", None)
        if writer is not None and writer.width_of_current_line:
            writer.line()
        reporter.write_line(line)
        reporter.flush()
        self._line_broken = True

    def resume_pytest_line(self, nodeid: str) -> None:
        """After progress lines in the middle of a test file's line of results, start
        that line again with its file name, as pytest does after its own interruptions,
        so the first results do not stand alone."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if not self._line_broken or reporter is None:
            return
        self._line_broken = False
        if reporter.showfspath and not reporter.showlongtestinfo:
            fspath = self.config.rootpath / nodeid.split("::")[0]
            with self._uncaptured():
                reporter.write(os.path.relpath(fspath, reporter.startpath) + " ", flush=True)
            reporter.currentfspath = fspath

    def _uncaptured(self) -> contextlib.AbstractContextManager[Any]:
        """Output capture off for a moment: these lines are for the terminal, not a test."""
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        return capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()

    def configure_node(self, node: Any) -> None:
        """xdist controller: a channel per worker for its progress lines, printed by the
        controller's main loop between test reports (never glued to pytest's dots)."""
        channel = node.gateway.newchannel()
        dsession = self.config.pluginmanager.get_plugin("dsession")
        worker = node.workerinput["workerid"]

        def received(line: str) -> None:
            # Runs in execnet's receiver thread: hand the line to the main loop.
            if dsession is not None:
                node.putevent(("xsafety_progress", {"line": f"[{worker}] {line}"}))
            else:
                self.write_line(f"[{worker}] {line}")

        if dsession is not None and not hasattr(dsession, "worker_xsafety_progress"):
            # xdist calls worker_<event>(**kwargs) on its session for each queued event.
            dsession.worker_xsafety_progress = self.write_line
        channel.setcallback(received)
        node.workerinput[PROGRESS_CHANNEL] = channel
