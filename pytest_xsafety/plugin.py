"""pytest wiring only: options, case parametrization, the fixture, the session.

The plugin is inert unless ``--xsafety-model`` (or any ``--xsafety-*`` option, or
the ini ``xsafety_model``) asks for it. Then one
:class:`~pytest_xsafety.session.session.XSafetySession` is registered and kept
in ``config.stash``; its hooks do the work. Verdicts travel on test reports as
``user_properties`` (see :mod:`pytest_xsafety.reporting.wire`) so they survive
xdist; the report is built once, on the controller, from those reports.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_xsafety.core.records import Case
from pytest_xsafety.core.text import UsageError
from pytest_xsafety.engine.pipeline import Runner
from pytest_xsafety.reporting.compare import load_baseline
from pytest_xsafety.session.case import CaseCheck, case_check
from pytest_xsafety.session.session import FIXTURE, XSafetySession
from pytest_xsafety.session.xdist_groups import worker_settings
from pytest_xsafety.setup.options import OPTIONS, parse_config

__all__ = ["USAGE_ERRORS", "CaseCheck", "XSafetySession"]

SESSION_KEY = pytest.StashKey[XSafetySession]()
PATH_OPTIONS = {"suite", "thresholds", "cache-dir", "report", "baseline"}
# Every set-up mistake derives from UsageError and becomes a one-line pytest usage error.
USAGE_ERRORS = (UsageError,)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xsafety", "pytest-xsafety: LLM safety calibration gate")
    for opt in OPTIONS:
        default = f" Default: {opt.default}." if opt.default else ""
        # argparse %-formats help strings: a literal "95%" would crash `pytest --help`.
        help_text = (opt.help + default).replace("%", "%%")
        if opt.switch:
            group.addoption(
                opt.flag, dest=opt.dest, action="store_const", const="true", default=None,
                help=help_text,
            )  # fmt: skip
        else:
            group.addoption(
                opt.flag, dest=opt.dest, metavar=opt.metavar, default=None,
                help=help_text,
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


def _rootdir_hint(config: pytest.Config, values: dict[str, str | None]) -> str:
    """Why the ini's model may be missing: pytest picks the rootdir (and so the ini)
    before it knows our options, so ``--xsafety-suite PATH`` counts PATH as a path to test."""
    if values.get("model") or "--xsafety-suite" not in config.invocation_params.args:
        return ""
    return (
        f" (pytest chose rootdir {config.rootpath} counting --xsafety-suite's PATH as a "
        "path to test: write --xsafety-suite=PATH)"
    )


def pytest_configure(config: pytest.Config) -> None:
    values, asked = _raw_values(config)
    if not asked:
        return
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    try:
        xconfig = parse_config(values, config.rootpath)
        workers, worker = worker_settings(workerinput)
        runner = Runner.from_config(xconfig, worker=worker, workers=workers)
        session = XSafetySession(config, xconfig, runner)
        if workerinput is None:  # the controller compares and writes the report
            if xconfig.baseline is not None:
                session.baseline = load_baseline(xconfig.baseline)
            session.check_outputs()
    except USAGE_ERRORS as exc:
        raise pytest.UsageError(f"pytest-xsafety: {exc}{_rootdir_hint(config, values)}") from None
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "xsafety-session")


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
    cases: list[Case] = session.runner.cases()
    metafunc.parametrize(FIXTURE, cases, ids=[c.case_id for c in cases], indirect=True)


@pytest.fixture
def xsafety_case(request: pytest.FixtureRequest) -> CaseCheck:
    """The generated, classified and budget-judged case this test stands for."""
    return case_check(request.config.stash[SESSION_KEY], request)
