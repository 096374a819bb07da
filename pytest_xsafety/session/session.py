"""The session object: hooks for one run, registered only when the plugin is on.

Its collaborators each own one concern: the :class:`Runner` (plan, generation,
verdicts), the :class:`SnapshotRun` (snapshot files), the records received from
test reports, and the report built once at the end, from which the terminal
summary and the files are rendered. Nothing here generates or classifies after
the tests have run.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Generator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_xsafety.core.records import Case, CaseRecord, CaseResult
from pytest_xsafety.core.secrets import scrub
from pytest_xsafety.engine.cache import cache_files
from pytest_xsafety.engine.pipeline import Runner
from pytest_xsafety.reporting.compare import Baseline
from pytest_xsafety.reporting.files import FILES, write_report
from pytest_xsafety.reporting.junit import add_late_properties, late_properties
from pytest_xsafety.reporting.lastrun import KEY as LAST_RUN_KEY
from pytest_xsafety.reporting.lastrun import RunSources, last_run
from pytest_xsafety.reporting.model import Report, build_report
from pytest_xsafety.reporting.summary import summary_lines
from pytest_xsafety.reporting.wire import decode, encode
from pytest_xsafety.session.progress import ProgressLines
from pytest_xsafety.session.snapshots import SnapshotRun
from pytest_xsafety.session.xdist_groups import group_scheduler
from pytest_xsafety.setup.options import ConfigError, XSafetyConfig
from pytest_xsafety.setup.outputs import MovedThenInterrupted, check_file, check_folder
from pytest_xsafety.snapshots.store import SnapshotCheck, Snapshots

FIXTURE = "xsafety_case"
WORKER_OUTPUT = "xsafety"  # what a worker hands the controller at its end (xdist's workeroutput)


class XSafetySession:
    def __init__(
        self,
        config: pytest.Config,
        xconfig: XSafetyConfig,
        runner: Runner,
        baseline: Baseline | None = None,
    ) -> None:
        self.config = config
        self.xconfig = xconfig
        self.runner = runner
        self.baseline = baseline
        self.is_worker = hasattr(config, "workerinput")
        self.snapshots = _snapshot_run(config, xconfig, runner)
        self.report: Report | None = None  # built once, at the end, on the controller
        self.report_files: list[Path] = []
        self._by_id = {c.case_id: c for c in runner.plan.cases}
        self._unrecorded: dict[str, CaseRecord] = {}  # nodeid -> errored before its fixture
        self.records: dict[str, CaseRecord] = {}  # nodeid -> record, on the controller
        self._selected: list[Case] | None = None
        self._collected = 0  # xsafety cases collected in this process (serial runs)
        self._deselected = 0
        self._extension: type | None = None  # the syrupy extension, made on first use
        self.progress = ProgressLines(config)
        runner.say = self.progress.say

    def selected(self, session: pytest.Session) -> list[Case]:
        """The cases pytest will run (after -k/-m deselection), computed once."""
        if self._selected is None:
            params = (getattr(item, "callspec", None) for item in session.items)
            cases = (p.params.get(FIXTURE) for p in params if p is not None)
            self._selected = [c for c in cases if isinstance(c, Case)]
        return self._selected

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: open the worker's progress channel."""
        self.progress.configure_node(node)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        lines = run_header(self.runner)
        if self.snapshots is None:
            lines.append("xsafety: snapshots off (the syrupy plugin is disabled)")
        else:
            lines += self.snapshots.header()
        return [scrub(line) for line in lines]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """No secret in what pytest prints or writes of a test: its traceback (an
        exception's text, an object's repr) and its captured output."""
        report = yield
        if report.longrepr is not None:
            text = str(report.longrepr)
            clean = scrub(text)
            if clean != text:  # rendered as text only when a secret was in it
                report.longrepr = clean
        report.sections = [(title, scrub(content)) for title, content in report.sections]
        return report

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: what the worker's backends reported (pins of what a server
        served, warnings), for the report."""
        said = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
        if said:
            self.runner.merge_said(said["manifests"], said["warnings"])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """Keep each model x strategy group on one worker, so it is generated once."""
        if config.getvalue("dist") != "load":
            return None
        groups = {c.case_id: f"{c.model}/{c.strategy}" for c in self.runner.plan.cases}
        return group_scheduler(config, log, groups)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not self.is_worker and self.snapshots is not None:
            self.snapshots.read_manifests()

    @pytest.hookimpl(tryfirst=True)  # before junitxml's: see _unrecorded
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        # Setup, call and teardown reports carry the item's properties as they were
        # then: the latest wins (the call phase may error a case its setup recorded).
        record = decode(dict(report.user_properties))
        if record is None:
            record = self._unrecorded.get(report.nodeid)
            if record is None and report.failed:
                record = self._errored_early(report)
            if record is not None:
                # junitxml writes a case's properties from its teardown report.
                self._unrecorded[report.nodeid] = record
                report.user_properties = [*report.user_properties, *encode(record)]
        if record is not None:
            self.records[report.nodeid] = record

    def _errored_early(self, report: pytest.TestReport) -> CaseRecord | None:
        """A case test that failed before its fixture put a record on it (another
        fixture, or a fault past every step's own handling): errored, so that every
        selected case is in the report."""
        start = report.nodeid.find("[")
        case = self._by_id.get(report.nodeid[start + 1 : -1]) if start >= 0 else None
        if case is None:
            return None
        crash = getattr(report.longrepr, "reprcrash", None)
        lines = report.longreprtext.strip().splitlines()
        cause = getattr(crash, "message", None) or (lines[-1] if lines else "error")
        name = f"{self.runner.classifier.name}=={self.runner.classifier.version}"
        p = case.prompt
        return CaseRecord(
            case.model, case.strategy, p.id, p.type, p.label, name, "error", error=cause
        )

    def run_records(self) -> list[CaseRecord]:
        """Every case's record in run order (reports arrive in completion order under xdist)."""
        order = {c.case_id: i for i, c in enumerate(self.runner.plan.cases)}
        return sorted(self.records.values(), key=lambda r: order.get(r.case_id, len(order)))

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_sessionfinish(
        self, session: pytest.Session, exitstatus: int
    ) -> Generator[None, None, None]:
        # The innermost wrapper: the report is written before any plugin's own
        # sessionfinish can fail (junitxml's, into a folder that became read-only),
        # and the terminal reporter, which wraps this hook, prints the summary after.
        if self.is_worker:
            # What the controller's report needs from this worker's backends.
            output: dict[str, Any] = getattr(self.config, "workeroutput", {})
            runner = self.runner
            output[WORKER_OUTPUT] = {"manifests": runner.manifests, "warnings": runner.warnings}
            return (yield)
        if not self.records:
            return (yield)  # nothing ran (--collect-only, all deselected)
        failed: Exception | None = None
        try:
            self._write_report(session)
        except Exception as exc:  # raised after the other plugins (junitxml) finished
            failed = exc
        try:
            yield
        except OSError as exc:
            if failed is not None or not self._junit_failed(exc):
                raise
            self._warn(f"--junitxml={self.config.option.xmlpath}: not written ({exc})")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:  # after junitxml's: the pair fields go into the file it wrote
            self._junit_pairs()
        if failed is not None:
            raise failed
        assert self.report is not None
        self._remember_run()
        # A side without a budget fails the run unless --xsafety-allow-no-budget: a gate
        # with nothing to gate must not pass; nor does an undecided budget (gate estimate).
        fails = self.report.breaches or self.report.fails_ungated or self.report.undecided
        if fails and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write_report(self, session: pytest.Session) -> None:
        """Sweep unused snapshots, build the one report and write its files."""
        snaps = self.snapshots
        opt = self.config.option
        if snaps is not None and snaps.sweep():
            keep = getattr(opt, "update_snapshots", False) or getattr(
                opt, "warn_unused_snapshots", False
            )
            if not keep and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # as syrupy does
        plan = self.runner.plan
        records = self.run_records()
        keys = self.runner.answer_keys(records)
        records = [replace(r, request_key=keys.get(r.case_id)) for r in records]
        self.report = build_report(
            self.runner.run_info(), records, plan.thresholds, self.baseline,
            plan.suite.prompts, plan.bases(), plan.samples,
        )  # fmt: skip
        if self.xconfig.report is None:
            return
        try:
            self.report_files = write_report(self.report, self.xconfig.report)
        except OSError as exc:  # checked writable at the start; it changed since
            self._warn(f"report not written to {self.xconfig.report}: {exc}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        except MovedThenInterrupted:  # Ctrl-C waited for the moves
            self._warn("interrupted while writing the report; this run's report is whole")
            session.exitstatus = pytest.ExitCode.INTERRUPTED
        except KeyboardInterrupt:  # before the moves: none happened
            self._warn("interrupted while writing the report; the previous report is whole")
            session.exitstatus = pytest.ExitCode.INTERRUPTED

    def _remember_run(self) -> None:
        """Keep the cases' labels and answer hashes in pytest's cache for ``xsafety
        review`` (as stepwise keeps its state there); nothing when the cache is off."""
        cache = getattr(self.config, "cache", None)
        if cache is None or self.report is None:
            return
        # A -k run keeps the other cases of earlier runs: they are still reviewable.
        earlier = cache.get(LAST_RUN_KEY, None)
        x, suite = self.xconfig, self.runner.plan.suite
        sources = RunSources(
            # To the microsecond: `xsafety review` reads the newest of several records.
            created=datetime.now(UTC).isoformat(timespec="microseconds"),
            rootdir=str(self.config.rootpath),
            suite=str(Path(suite.source).resolve()),
            suite_sha256=suite.sha256,
            cache_dir=None if x.no_cache else str(x.cache_dir.resolve()),
            report=str(x.report.resolve()) if x.report is not None and self.report_files else None,
            keys={r.case_id: r.request_key for r in self.report.records if r.request_key},
        )
        cache.set(LAST_RUN_KEY, last_run(self.report.records, x.reviews, earlier, sources))

    def junit_path(self) -> Path | None:
        """The JUnit XML file, as junitxml expands ``--junitxml``: relative to where
        pytest was started."""
        xmlpath = getattr(self.config.option, "xmlpath", None)
        if not xmlpath:
            return None
        expanded = os.path.expanduser(os.path.expandvars(str(xmlpath)))
        return Path(self.config.invocation_params.dir, expanded)

    def _junit_failed(self, exc: OSError) -> bool:
        """Whether ``exc`` is junitxml failing to write its file (or make its folder)."""
        path = self.junit_path()
        named = {Path(os.path.abspath(f)) for f in (exc.filename, exc.filename2) if f}
        return path is not None and bool(named & {path.absolute(), path.absolute().parent})

    def _junit_pairs(self) -> None:
        """Pair outcomes into the JUnit XML that junitxml has just written: they need
        both sides of a pair."""
        path = self.junit_path()
        if path is None or self.report is None:
            return
        try:
            late = late_properties(self.report.records, self.report.summaries)
            add_late_properties(path, late, self.report.gate_failures)
        except (OSError, ET.ParseError) as exc:
            xmlpath = self.config.option.xmlpath
            self._warn(f"pair and sample properties not added to the JUnit XML {xmlpath}: {exc}")

    def _warn(self, warning: str) -> None:
        """A warning the terminal summary shows, for a write that failed at the end."""
        assert self.report is not None
        info = replace(self.report.info, warnings=(*self.report.info.warnings, warning))
        self.report = replace(self.report, info=info)

    def check_outputs(self) -> None:
        """Every folder this run writes to, checked before any model loads; and no
        --snapshot-update over snapshots another backend or suite recorded."""
        x = self.xconfig
        if not x.no_cache:
            check_folder(x.cache_dir, "--xsafety-cache-dir", cache_files())
        if x.report is not None:
            self._report_outside_snapshots(x.report)
            check_folder(x.report, "--xsafety-report", FILES)
        junit = self.junit_path()
        if junit is not None:
            check_file(junit, f"--junitxml={self.config.option.xmlpath}")
        if self.snapshots is not None:
            self.snapshots.check_update()

    def _report_outside_snapshots(self, report: Path) -> None:
        """The report's files are not snapshots: inside the snapshot folder they would
        count as unused ones (failing the run) and ``--snapshot-update`` would delete them."""
        if self.snapshots is None:
            return
        store = self.snapshots.store
        root, where = store.root.resolve(), report.resolve()
        if where == root or root in where.parents:
            raise ConfigError(
                f"--xsafety-report={report}: inside the snapshot folder {store.shown(store.root)}, "
                "where its files would count as unused snapshots (--snapshot-update deletes "
                "them); pass a folder outside it"
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Count the xsafety cases collected, before -k/-m deselect any (first hook)."""
        self._collected += sum(FIXTURE in getattr(i, "fixturenames", ()) for i in items)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self._deselected += sum(FIXTURE in getattr(i, "fixturenames", ()) for i in items)

    def no_case_hint(self) -> str | None:
        """Why no xsafety case ran, and the fix; None when one ran (or only collecting)."""
        if self.records or self.is_worker or self.config.option.collectonly:
            return None
        if self._collected and self._deselected >= self._collected:
            return (
                f"xsafety: no xsafety case ran: -k/-m deselected all {self._collected} of "
                "them, so nothing was gated"
            )
        where = " ".join(str(a) for a in self.config.args) or str(self.config.rootpath)
        return (
            f"xsafety: no xsafety case ran: no test collected from {where} uses the "
            "xsafety_case fixture. Add a test file holding `def test_xsafety(xsafety_case): "
            "xsafety_case.check()` (`xsafety init` writes tests/test_xsafety.py), or give "
            "pytest the path of the one you have"
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report is None:
            hint = self.no_case_hint()
            if hint is not None:
                terminalreporter.write_line(hint, red=True)
            return
        snapshot_lines = self.snapshots.summary(self.run_records()) if self.snapshots else []
        for line in summary_lines(self.report, snapshot_lines, self.report_files):
            style = {k: True for k in ("red", "yellow", "bold") if getattr(line, k)}
            if line.sep is not None:
                terminalreporter.write_sep(line.sep, scrub(line.text), **style)
            else:
                terminalreporter.write_line(scrub(line.text), **style)

    def snapshot(
        self, request: pytest.FixtureRequest, result: CaseResult
    ) -> tuple[SnapshotCheck | None, Any]:
        """The case's snapshot check, and syrupy's assertion when its file is checked."""
        if self.snapshots is None:
            return None, None
        snap = self.snapshots.check(result, self.selected(request.session))
        if not snap.asserted:
            return snap, None
        if self._extension is None:
            from pytest_xsafety.snapshots.syrupy_ext import case_extension

            store = self.snapshots.store

            def locate(item: pytest.Item) -> Path:
                # syrupy asks about every test of the session, the user's own too:
                # those get a path that no snapshot file has.
                callspec = getattr(item, "callspec", None)
                case = callspec.params.get(FIXTURE) if callspec is not None else None
                return store.path(case) if isinstance(case, Case) else store.root / "-"

            self._extension = case_extension(locate, store.accepts)
        return snap, request.getfixturevalue("snapshot").use_extension(self._extension)


def _snapshot_run(
    config: pytest.Config, xconfig: XSafetyConfig, runner: Runner
) -> SnapshotRun | None:
    if not config.pluginmanager.hasplugin("syrupy"):
        return None
    opt = config.option
    store = Snapshots(
        xconfig.snapshot_dir,
        config.rootpath,
        xconfig.drift,
        xconfig.snapshot_unsafe,
        bool(getattr(opt, "update_snapshots", False)),
    )
    return SnapshotRun(
        store,
        runner,
        cleanup=not getattr(opt, "no_cleanup", False),
        check_unused=not getattr(opt, "disable_unused_snapshots", False),
    )


def run_header(runner: Runner) -> list[str]:
    """The header lines: suite, models, strategies, classifier, budgets, cache."""
    plan, config = runner.plan, runner.config
    suite = plan.suite
    known = f" ({suite.known_as})" if suite.known_as else ""
    lines = [
        f"xsafety: suite {suite.name} from {suite.source}: {len(suite.prompts)} prompts, "
        f"{len(suite.pairs)} contrast pairs, sha256 {suite.sha256[:16]}{known}",
    ]
    if suite.hash_warning:
        lines.append(f"xsafety: WARNING: {suite.hash_warning}")
    for m in plan.models.values():
        # A server's dtype is its own: the entry's says nothing there.
        dtype = "" if m.backend == "openai" else f", dtype {runner.runtime.dtype or m.dtype}"
        lines.append(
            f"xsafety: model {m.name}: {m.pin}{dtype}, "
            f"backend {m.backend}, greedy, max_new_tokens {plan.max_new_tokens(m.name)}"
        )
    lines.append(
        f"xsafety: strategies {', '.join(plan.strategies)}; classifier "
        f"{runner.classifier.name}=={runner.classifier.version}; batch size {config.batch_size}; "
        f"budgets {plan.thresholds.source or 'none (no thresholds.toml)'}"
    )
    cache = (
        "off (--xsafety-no-cache)"
        if config.no_cache
        else str(config.cache_dir / "responses.sqlite")
    )
    lines.append(f"xsafety: response cache {cache}")
    return lines
