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
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_xsafety.core.records import Case, CaseRecord, CaseResult
from pytest_xsafety.engine.cache import cache_files
from pytest_xsafety.engine.pipeline import Runner
from pytest_xsafety.reporting.compare import Baseline
from pytest_xsafety.reporting.files import FILES, write_report
from pytest_xsafety.reporting.junit import add_pair_properties
from pytest_xsafety.reporting.lastrun import KEY as LAST_RUN_KEY
from pytest_xsafety.reporting.lastrun import RunSources, last_run
from pytest_xsafety.reporting.model import Report, build_report
from pytest_xsafety.reporting.summary import summary_lines
from pytest_xsafety.reporting.wire import decode
from pytest_xsafety.session.progress import ProgressLines
from pytest_xsafety.session.snapshots import SnapshotRun
from pytest_xsafety.session.xdist_groups import group_scheduler
from pytest_xsafety.setup.options import XSafetyConfig
from pytest_xsafety.setup.outputs import check_folder
from pytest_xsafety.snapshots.store import SnapshotCheck, Snapshots

FIXTURE = "xsafety_case"


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
        self._props: dict[str, dict[str, Any]] = {}  # nodeid -> the case's properties
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
            return [*lines, "xsafety: snapshots off (the syrupy plugin is disabled)"]
        return lines + self.snapshots.header()

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

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        # Setup, call and teardown reports share the item's properties; the call
        # phase may add some (snapshot status), so later reports extend earlier ones.
        props = self._props.setdefault(report.nodeid, {})
        props.update(report.user_properties)
        record = decode(props)
        if record is not None:
            self.records[report.nodeid] = record

    def run_records(self) -> list[CaseRecord]:
        """Every case's record in run order (reports arrive in completion order under xdist)."""
        order = {c.case_id: i for i, c in enumerate(self.runner.plan.cases)}
        return sorted(self.records.values(), key=lambda r: order.get(r.case_id, len(order)))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # Runs before the terminal summary (the terminal reporter wraps this hook).
        if self.is_worker or not self.records:
            return  # nothing ran (--collect-only, all deselected)
        snaps = self.snapshots
        opt = self.config.option
        if snaps is not None and snaps.sweep():
            keep = getattr(opt, "update_snapshots", False) or getattr(
                opt, "warn_unused_snapshots", False
            )
            if not keep and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # as syrupy does
        plan = self.runner.plan
        self.report = build_report(
            self.runner.run_info(), self.run_records(), plan.thresholds, self.baseline,
            plan.suite.prompts, plan.bases(),
        )  # fmt: skip
        if self.xconfig.report is not None:
            try:
                self.report_files = write_report(self.report, self.xconfig.report)
            except OSError as exc:  # checked writable at the start; it changed since
                self._warn(f"report not written to {self.xconfig.report}: {exc}")
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self._junit_pairs()
        self._remember_run()
        # A side without a budget fails the run unless --xsafety-allow-no-budget: a gate
        # with nothing to gate must not pass.
        if (self.report.breaches or self.report.fails_ungated) and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

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
            keys=self.runner.answer_keys(self.report.records),
        )
        cache.set(LAST_RUN_KEY, last_run(self.report.records, x.reviews, earlier, sources))

    def _junit_pairs(self) -> None:
        """Pair outcomes into the JUnit XML that junitxml has just written (this hook
        is trylast, so it runs after junitxml's): they need both sides of a pair."""
        xmlpath = getattr(self.config.option, "xmlpath", None)
        if not xmlpath or self.report is None:
            return
        # junitxml expands the path as given, relative to where pytest was started.
        path = self.config.invocation_params.dir / os.path.expanduser(os.path.expandvars(xmlpath))
        try:
            add_pair_properties(path, self.report.records)
        except (OSError, ET.ParseError) as exc:
            self._warn(f"contrast pairs not added to the JUnit XML {xmlpath}: {exc}")

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
            check_folder(x.report, "--xsafety-report", FILES)
        if self.snapshots is not None:
            self.snapshots.check_update()

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
                terminalreporter.write_sep(line.sep, line.text, **style)
            else:
                terminalreporter.write_line(line.text, **style)

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
            self._extension = case_extension(
                lambda item: store.path(item.callspec.params[FIXTURE]), store.accepts
            )
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
        lines.append(
            f"xsafety: model {m.name}: {m.pin}, dtype {runner.runtime.dtype or m.dtype}, "
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
