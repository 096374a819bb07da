"""pytest wiring only: options, case parametrization, per-case verdicts, summary.

The plugin is inert unless ``--xsafety-model`` (or any ``--xsafety-*`` option, or
the ini ``xsafety_model``) asks for it. Then one :class:`XSafetySession` is
registered and kept in ``config.stash``. Verdicts travel on test reports as
``user_properties`` so they survive xdist; budgets are judged once, on the
controller, from those reports.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_xsafety.budgets import GroupSummary, ThresholdsError
from pytest_xsafety.classify import ClassifierError
from pytest_xsafety.compare import Baseline, BaselineError, load_baseline
from pytest_xsafety.config import OPTIONS, ConfigError, XSafetyConfig, parse_config
from pytest_xsafety.export import Report, build_report, write_report
from pytest_xsafety.models import RegistryError
from pytest_xsafety.records import Case, Label
from pytest_xsafety.report import (
    breach_lines,
    change_lines,
    describe_check,
    excerpt,
    over_budget_within_interval,
    pct,
    study_table,
    summary_table,
)
from pytest_xsafety.results import PROP, CaseRecord, response_properties
from pytest_xsafety.runner import CaseResult, CaseVerdict, Runner
from pytest_xsafety.snapshot import (
    CaseStatus,
    DriftSummary,
    SnapshotCheck,
    Snapshots,
    group_manifest,
    quarantine,
)
from pytest_xsafety.strategies import StrategyError
from pytest_xsafety.suites import SuiteError, load_suite

if TYPE_CHECKING:
    from pytest_xsafety.generate import Progress

SESSION_KEY = pytest.StashKey["XSafetySession"]()
FIXTURE = "xsafety_case"
PATH_OPTIONS = {"suite", "thresholds", "cache-dir", "report", "baseline"}
USAGE_ERRORS = (
    ConfigError, SuiteError, RegistryError, StrategyError, ThresholdsError, ClassifierError,
    BaselineError,
)  # fmt: skip


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xsafety", "pytest-xsafety: LLM safety calibration gate")
    for opt in OPTIONS:
        default = f" Default: {opt.default}." if opt.default else ""
        if opt.switch:
            group.addoption(
                opt.flag, dest=opt.dest, action="store_const", const="true", default=None,
                help=opt.help,
            )  # fmt: skip
        else:
            group.addoption(
                opt.flag, dest=opt.dest, metavar=opt.metavar, default=None,
                help=opt.help + default,
            )  # fmt: skip
        parser.addini(opt.dest, help=f"Default for {opt.flag}.", default="")


def _raw_values(config: pytest.Config) -> tuple[dict[str, str | None], bool]:
    """Option values (command line over ini) and whether the plugin was asked for."""
    values: dict[str, str | None] = {}
    asked = False
    for opt in OPTIONS:
        cli = config.getoption(opt.dest)
        if cli is not None:
            values[opt.name] = str(cli)
            asked = True
            continue
        ini = str(config.getini(opt.dest) or "")
        if ini and opt.name in PATH_OPTIONS and not (opt.name == "suite" and ini == "xstest"):
            ini = str(config.rootpath / ini)  # ini paths are relative to the rootdir
        values[opt.name] = ini or None
    return values, asked or bool(values.get("model"))


def pytest_configure(config: pytest.Config) -> None:
    values, asked = _raw_values(config)
    if not asked:
        return
    try:
        xconfig = parse_config(values, config.rootpath)
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        threads = worker = None
        if workerinput is not None:
            # Workers share the cores: n workers x default threads oversubscribe the CPU.
            threads = max(1, (os.cpu_count() or 1) // int(workerinput["workercount"]))
            worker = int(str(workerinput["workerid"]).removeprefix("gw") or 0)
        runner = Runner.from_config(xconfig, threads=threads, worker=worker)
        baseline = None
        if workerinput is None:  # the controller compares and writes the report
            if xconfig.baseline is not None:
                baseline = load_baseline(xconfig.baseline)
            if xconfig.report is not None:
                make_report_dir(xconfig.report)
    except USAGE_ERRORS as exc:
        raise pytest.UsageError(f"pytest-xsafety: {exc}") from None
    session = XSafetySession(config, xconfig, runner, baseline)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "xsafety-session")


def make_report_dir(path: Path) -> None:
    """Create the report folder now, so that a bad path fails before any test runs."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--xsafety-report={path}: cannot create it ({exc.strerror})") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.runner.close()
        config.pluginmanager.unregister(session)
        del config.stash[SESSION_KEY]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if FIXTURE not in metafunc.fixturenames:
        return
    session = metafunc.config.stash.get(SESSION_KEY, None)
    if session is None:
        off = pytest.mark.skip(reason="pytest-xsafety is off: pass --xsafety-model NAME")
        metafunc.parametrize(FIXTURE, [pytest.param(None, marks=off)], ids=["off"], indirect=True)
        return
    cases = session.runner.cases()
    metafunc.parametrize(FIXTURE, cases, ids=[c.case_id for c in cases], indirect=True)


class CaseCheck:
    """What a suite test receives: the case's verdict, and ``check()`` to assert it
    (its snapshot first, then its verdict)."""

    def __init__(
        self, verdict: CaseVerdict, snapshot: SnapshotCheck | None = None, assertion: Any = None
    ) -> None:
        self.verdict = verdict
        self.result = verdict.result
        self.snapshot = snapshot
        self._assertion = assertion  # syrupy's SnapshotAssertion, when the file is checked

    def check(self) -> None:
        snap = self.snapshot
        if snap is not None and snap.change.error is not None and snap.stored is not None:
            # Never used as if valid: moved aside, rebuilt from this run, and failed.
            aside = quarantine(snap.path, snap.text)
            pytest.fail(f"{snap.failure()}\nmoved aside to {aside}; rebuilt", pytrace=False)
        if snap is not None and self._assertion is not None:
            matched = self._assertion == snap.text  # syrupy compares, records, writes
            if not matched:
                pytest.fail(snap.failure(), pytrace=False)
        v = self.verdict
        r = v.result
        safe = r.case.prompt.label == "safe"
        kind = "a safe prompt (wanted answer)" if safe else "an unsafe prompt (wanted refusal)"
        said = f"{r.label.value} of {kind}: {excerpt(r.generation.text)!r}"
        if v.status == "fail":
            budgets = "\n".join(describe_check(c) for c in v.breaches)
            pytest.fail(f"{said}\nbudget exceeded:\n{budgets}", pytrace=False)
        if v.status == "xfail":
            if r.label is Label.UNSCORED:
                pytest.xfail(
                    f"unscored: the classifier could not label {excerpt(r.generation.text)!r}"
                )
            pytest.xfail(f"{said} (within budget)")


@pytest.fixture
def xsafety_case(request: pytest.FixtureRequest) -> CaseCheck:
    """The generated, classified and budget-judged case this test stands for."""
    case: Case = request.param
    session: XSafetySession = request.config.stash[SESSION_KEY]
    verdict = session.runner.verdict(case, session.selected(request.session))
    r = verdict.result
    p = case.prompt
    props = [
        (PROP + "model", case.model),
        (PROP + "strategy", case.strategy),
        (PROP + "prompt_id", p.id),
        (PROP + "type", p.type),
        (PROP + "expected", p.label),
        (PROP + "classifier", f"{r.classifier}=={r.classifier_version}"),
        (PROP + "verdict", verdict.status),
    ]
    if r.error is not None:
        request.node.user_properties.extend([*props, (PROP + "error", r.error)])
        # Raised from the fixture, so pytest reports an error, not a verdict.
        raise GenerationFailed(f"{case.case_id}: generation failed: {r.error}")
    props += [
        (PROP + "label", r.label.value),
        (PROP + "turns", str(len(r.responses))),
        (PROP + "truncated", str(r.generation.truncated).lower()),
        (PROP + "empty", str(not r.generation.text.strip()).lower()),
    ]
    if r.first_label is not None:
        props.append((PROP + "first_label", r.first_label.value))
    snap, assertion = session.snapshot(request, r)
    if snap is not None:
        props += [(PROP + name, value) for name, value in snap.properties()]
    if session.xconfig.report is not None:
        unsafe = p.label == "unsafe"
        props += response_properties(r.generation.text, unsafe, session.xconfig.report_unsafe_full)
    request.node.user_properties.extend(props)
    return CaseCheck(verdict, snap, assertion)


class GenerationFailed(RuntimeError):
    """The backend could not answer this case, even alone; the cause is in the message."""


_CASE_IN_NODEID = re.compile(r"\[(?P<id>[^\]]+)\]$")


class XSafetySession:
    """Hooks for one run; registered only when the plugin is on."""

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
        self._props: dict[str, dict[str, Any]] = {}  # nodeid -> the case's properties
        self.records: dict[str, CaseRecord] = {}  # nodeid -> case, on the controller
        self._selected: list[Case] | None = None
        self.is_worker = hasattr(config, "workerinput")
        self.baseline = baseline
        self.report: Report | None = None  # built at the end when a report or baseline is asked
        self.report_files: list[Path] = []
        self._case_groups = {c.case_id: f"{c.model}/{c.strategy}" for c in runner.cases()}
        runner.progress = self._progress
        self.snapshots: Snapshots | None = None
        if config.pluginmanager.hasplugin("syrupy"):
            update = bool(config.getoption("update_snapshots", False))
            self.snapshots = Snapshots(
                xconfig.snapshot_dir,
                config.rootpath,
                xconfig.drift,
                xconfig.snapshot_unsafe,
                update,
            )
        self.snapshot_statuses: dict[str, CaseStatus] = {}  # nodeid -> status (controller)
        self._prompts = {c.case_id: c.prompt.text for c in runner.cases()}
        self._extension: type | None = None  # the syrupy extension, made on first use
        self._recorded: set[tuple[str, str]] = set()  # groups whose manifest this process wrote
        self._manifest_changes: dict[str, list[str]] = {}
        self._unused: list[Path] | None = None

    def selected(self, session: pytest.Session) -> list[Case]:
        """The cases pytest will run (after -k/-m deselection), computed once."""
        if self._selected is None:
            selected: list[Case] = []
            for item in session.items:
                callspec = getattr(item, "callspec", None)
                case = callspec.params.get(FIXTURE) if callspec is not None else None
                if isinstance(case, Case):
                    selected.append(case)
            self._selected = selected
        return self._selected

    def _progress(self, progress: Progress) -> None:
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            if self.is_worker:
                # An xdist worker's stderr is the controller's, once capture is off.
                worker = self.config.workerinput["workerid"]  # type: ignore[attr-defined]
                sys.stderr.write(f"[{worker}] {progress.line()}\n")
                sys.stderr.flush()
                return
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(progress.line())

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        r = self.runner
        suite = r.suite
        known = f" ({suite.known_as})" if suite.known_as else ""
        lines = [
            f"xsafety: suite {suite.name} from {suite.source}: {len(suite.prompts)} prompts, "
            f"{len(suite.pairs)} contrast pairs, sha256 {suite.sha256[:16]}{known}",
        ]
        if suite.hash_warning:
            lines.append(f"xsafety: WARNING: {suite.hash_warning}")
        for m in r.models.values():
            lines.append(
                f"xsafety: model {m.name}: {m.pin}, dtype {r.runtime.dtype or m.dtype}, "
                f"backend {m.backend}, greedy, max_new_tokens {r.max_new_tokens(m.name)}"
            )
        lines.append(
            f"xsafety: strategies {', '.join(r.strategies)}; classifier "
            f"{r.classifier.name}=={r.classifier.version}; batch size {self.xconfig.batch_size}; "
            f"budgets {r.thresholds.source or 'none (no thresholds.toml)'}"
        )
        cache = (
            "off (--xsafety-no-cache)"
            if self.xconfig.no_cache
            else str(self.xconfig.cache_dir / "responses.sqlite")
        )
        lines.append(f"xsafety: response cache {cache}")
        return lines + self.snapshot_header()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """Keep each model x strategy group on one worker, so it is generated once."""
        if config.getvalue("dist") != "load":
            return None
        from xdist.scheduler import LoadScopeScheduling

        groups = self._case_groups

        class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
            def _split_scope(self, nodeid: str) -> str:
                match = _CASE_IN_NODEID.search(nodeid)
                if match and match["id"] in groups:
                    return "xsafety:" + groups[match["id"]]
                return nodeid  # any other test is its own unit, as under --dist load

        return GroupScheduling(config, log)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        # Setup, call and teardown reports share the item's properties; the call
        # phase may add some (snapshot status), so later reports extend earlier ones.
        props = self._props.setdefault(report.nodeid, {})
        props.update(report.user_properties)
        record = CaseRecord.from_properties(props)
        if record is not None:
            self.records[report.nodeid] = record
            if PROP + "snapshot" in props:
                self.snapshot_statuses[report.nodeid] = snapshot_status(props, self._prompts)

    def run_records(self) -> list[CaseRecord]:
        """Every case's record in run order (reports arrive in completion order under xdist)."""
        order = {c.case_id: i for i, c in enumerate(self.runner.cases())}
        return sorted(self.records.values(), key=lambda r: order.get(r.case_id, len(order)))

    def summaries(self) -> list[GroupSummary]:
        outcomes = [o for r in self.run_records() if (o := r.outcome) is not None]
        return self.runner.summarise(outcomes)

    def cached_baselines(self, summaries: list[GroupSummary]) -> list[GroupSummary]:
        """Baseline summaries from the cache for models whose baseline did not run."""
        if any(s.strategy == "baseline" for s in summaries):
            return []
        out: list[GroupSummary] = []
        for model in dict.fromkeys(s.model for s in summaries):
            ids = {r.prompt_id for r in self.records.values() if r.model == model}
            outcomes = self.runner.cached_baseline(model, ids)
            if outcomes:
                out += self.runner.summarise(outcomes)
        return out

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not self.records:
            return
        records = self.run_records()
        summaries = self.summaries()
        tr = terminalreporter
        tr.write_sep("=", f"xsafety summary (gate: {self.xconfig.gate})")
        for line in summary_table(summaries):
            tr.write_line(line)
        study = study_table(summaries)
        cached = self.cached_baselines(summaries)
        if not study and cached:
            study = study_table(cached + summaries)
        if study:
            title = "strategies against baseline (arXiv 2405.05418, both sides)"
            if cached:
                title += "; baseline from the response cache"
            tr.write_sep("-", title)
            for line in study:
                tr.write_line(line)
        if self.report is not None and self.report.baseline is not None:
            tr.write_sep("-", f"changes since {self.report.baseline.source} (exact McNemar)")
            for line in change_lines(self.report.changes):
                tr.write_line(line)
        second = [r for r in records if (r.turns or 1) > 1]
        if second:
            flipped = sum(1 for r in second if r.first_label is not r.label)
            tr.write_line(
                f"interactive: {len(second)} case(s) got a clarification turn; "
                f"{flipped} changed label after it"
            )
        notes = []
        if empty := sum(1 for r in records if r.empty):
            notes.append(f"{empty} empty response(s) (labelled by the classifier's "
                         "empty-response rule)")  # fmt: skip
        if truncated := sum(1 for r in records if r.truncated):
            notes.append(f"{truncated} response(s) cut at the token limit")
        if notes:
            tr.write_line("responses: " + "; ".join(notes))
        errors = [r for r in records if r.label is None]
        if errors:
            groups = sorted({f"{r.model}/{r.strategy}" for r in errors})
            tr.write_line(
                f"{len(errors)} case(s) errored: generation failed ({', '.join(groups)}); "
                "they count in no rate. See the errors above.",
                red=True,
            )
        for warning in self.runner.warnings:
            tr.write_line(f"xsafety: WARNING: {warning}", yellow=True)
        for line in over_budget_within_interval(summaries):
            tr.write_line(line, yellow=True)
        breaches = breach_lines(summaries)
        if breaches:
            tr.write_sep("-", "budgets exceeded", red=True, bold=True)
            for line in breaches:
                tr.write_line(line, red=True)
        for s in summaries:
            if s.unscored:
                tr.write_line(f"{s.model}/{s.strategy}: {s.unscored} case(s) unscored")
        if not breaches:
            rates = ", ".join(
                f"{s.model}/{s.strategy} {pct(s.safe_refusal_rate)}" for s in summaries
            )
            tr.write_line(f"all budgets hold (safe refusal: {rates})")
        snapshot_lines = self.snapshot_summary()
        if snapshot_lines:
            tr.write_sep("-", "xsafety snapshots")
            for line in snapshot_lines:
                tr.write_line(line)
        if self.report_files:
            names = ", ".join(p.name for p in self.report_files)
            tr.write_line(f"xsafety: report in {self.report_files[0].parent}: {names}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # Runs before the terminal summary (the terminal reporter wraps this hook).
        if self.is_worker:
            return
        opt = self.config.option
        if (
            self.unused_snapshots()
            and not getattr(opt, "update_snapshots", False)
            and not getattr(opt, "warn_unused_snapshots", False)
            and session.exitstatus == 0
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # as syrupy does
        if not self.records:
            return
        summaries = self.summaries()
        if self.xconfig.report is not None or self.baseline is not None:
            self.report = build_report(
                self.runner.run_info(), self.run_records(), summaries, self.baseline
            )
            if self.xconfig.report is not None:
                self.report_files = write_report(self.report, self.xconfig.report)
        if any(s.breaches for s in summaries) and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    # Snapshots (syrupy): one file per case, see pytest_xsafety/snapshot.py ----------

    def _groups(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys(c.group for c in self.runner.cases()))

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # Read before any test runs: under --snapshot-update the manifests are rewritten.
        snaps = self.snapshots
        if self.is_worker or snaps is None:
            return
        for model, strategy in self._groups():
            if snaps.manifest_path(model, strategy).is_file():
                current = group_manifest(self.runner, model, strategy)
                changes = snaps.manifest_changes(model, strategy, current)
                if changes:
                    self._manifest_changes[f"{model}/{strategy}"] = changes

    def snapshot_header(self) -> list[str]:
        snaps = self.snapshots
        if snaps is None:
            return ["xsafety: snapshots off (the syrupy plugin is disabled)"]
        groups = self._groups()
        if snaps.update:
            state = "recording (--snapshot-update)"
        else:
            parts = [f"drift policy {snaps.policy}"]
            checked = [f"{m}/{s}" for m, s in groups if snaps.checked(m, s)]
            unchecked = [f"{m}/{s}" for m, s in groups if not snaps.checked(m, s)]
            if checked:
                parts.append(f"checked {', '.join(checked)}")
            if unchecked:
                parts.append(f"none recorded for {', '.join(unchecked)}")
            state = "; ".join(parts)
        lines = [
            f"xsafety: snapshots in {snaps.shown(snaps.root)}/ (unsafe responses {snaps.unsafe}): "
            + state
        ]
        for group, changes in self._manifest_changes.items():
            lines.append(
                f"xsafety: snapshots {group}: manifest differs from the recorded one: "
                + "; ".join(changes)
            )
        return lines

    def snapshot(
        self, request: pytest.FixtureRequest, result: CaseResult
    ) -> tuple[SnapshotCheck | None, Any]:
        """The case's snapshot check, and syrupy's assertion when its file is checked."""
        snaps = self.snapshots
        if snaps is None:
            return None, None
        case = result.case
        if snaps.update and case.group not in self._recorded:
            # The process that runs a group writes its manifest (xdist keeps a group on
            # one worker), after generation, so the loaded backend's report is known.
            self._recorded.add(case.group)
            current = group_manifest(self.runner, case.model, case.strategy)
            snaps.record_manifest(
                case.model, case.strategy, current, self.runner.manifests.get(case.model)
            )
        snap = snaps.check(result)
        if not snap.asserted:
            return snap, None
        if self._extension is None:
            from pytest_xsafety.syrupy_ext import case_extension

            self._extension = case_extension(
                lambda item: snaps.path(item.callspec.params[FIXTURE]), snaps.accepts
            )
        return snap, request.getfixturevalue("snapshot").use_extension(self._extension)

    def unused_snapshots(self) -> list[Path]:
        """Files in the run's checked group directories for no prompt of the whole suite
        (whatever --xsafety-sample and -k select); deleted by --snapshot-update."""
        if self._unused is not None:
            return self._unused
        self._unused = []
        snaps = self.snapshots
        opt = self.config.option
        if snaps is None or getattr(opt, "disable_unused_snapshots", False):
            return self._unused
        if not self.records:
            return self._unused  # nothing ran (--collect-only, all deselected)
        groups = [g for g in self._groups() if snaps.group_dir(*g).is_dir()]
        if groups:
            prompts = load_suite(self.xconfig.suite, self.xconfig.cache_dir).prompts
            self._unused = [p for g in groups for p in snaps.unused(*g, prompts)]
        if snaps.update and not getattr(opt, "no_cleanup", False):
            for path in self._unused:
                path.unlink(missing_ok=True)
        return self._unused

    def snapshot_summary(self) -> list[str]:
        snaps = self.snapshots
        if snaps is None or not self.snapshot_statuses:
            return []
        root = snaps.shown(snaps.root) + "/"
        groups = self._groups()
        if not snaps.update and not any(snaps.checked(*g) for g in groups):
            names = ", ".join(f"{m}/{s}" for m, s in groups)
            return [
                f"no snapshots recorded in {root} for {names}: --snapshot-update records "
                f"{len(self.snapshot_statuses)} case(s)"
            ]
        opt = self.config.option
        return DriftSummary(
            root,
            snaps.policy,
            snaps.update,
            cases=list(self.snapshot_statuses.values()),
            unused=[snaps.shown(p) for p in self.unused_snapshots()],
            unused_deleted=snaps.update and not getattr(opt, "no_cleanup", False),
            manifests=self._manifest_changes,
        ).lines()


def snapshot_status(props: dict[str, Any], prompts: dict[str, str]) -> CaseStatus:
    """A case's snapshot outcome, from its report's user_properties."""
    case_id = "/".join(str(props[PROP + key]) for key in ("model", "strategy", "type", "prompt_id"))
    what = tuple(filter(None, str(props.get(PROP + "snapshot_changed", "")).split(",")))
    # A first-turn flip (interactive) compares the first answers' labels.
    label = props.get(PROP + "first_label") if "first-turn label" in what else None
    return CaseStatus(
        case_id=case_id,
        status=props[PROP + "snapshot"],
        label=str(label or props[PROP + "label"]),
        old_label=props.get(PROP + "snapshot_old_label"),
        what=what,
        prompt=prompts.get(case_id, ""),
    )
