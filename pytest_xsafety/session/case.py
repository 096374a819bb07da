"""What a suite test receives, and how the fixture makes it: the case's verdict,
its snapshot check, and its record put on the test report through the wire codec."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from pytest_xsafety.core.choices import UnsafeMode
from pytest_xsafety.core.records import Case, CaseRecord, Label, response_of
from pytest_xsafety.core.redaction import one_line
from pytest_xsafety.engine.verdicts import CaseVerdict
from pytest_xsafety.reporting.terminal import describe_check
from pytest_xsafety.reporting.wire import PROP, encode
from pytest_xsafety.snapshots.store import (
    SnapshotCheck,
    SnapshotFileError,
    quarantine,
    unwritable,
)

if TYPE_CHECKING:
    from pytest_xsafety.session.session import XSafetySession


CASE_IDS_SHOWN = 10  # prompt ids a failing case lists per breached budget


def errored(node: pytest.Item, record: CaseRecord, cause: str, *, whole: bool = False) -> NoReturn:
    """Put ``record``, errored with ``cause``, on the test report and fail the test
    without a traceback. A fault that hits a whole group is named once per group in
    the xsafety summary, so each case says only what kind it was, unless ``whole``
    (a fault of this case alone, such as its snapshot file)."""
    record = errored_record(record, cause)
    put_record(node, record)
    head = cause if whole else cause.split(": ", 1)[0][:120]
    tail = "" if whole else "; the xsafety summary names the cause"
    pytest.fail(f"{record.case_id}: errored: {head}{tail}", pytrace=False)


def errored_record(r: CaseRecord, cause: str) -> CaseRecord:
    """The case as errored: who it is and the ``cause``; no label, so it counts in no rate."""
    return CaseRecord(
        r.model, r.strategy, r.prompt_id, r.prompt_type, r.expected, r.classifier, "error",
        error=cause, cached_baseline=r.cached_baseline,
    )  # fmt: skip


def put_record(node: pytest.Item, record: CaseRecord) -> None:
    """The case's record on its test report, replacing any the test carried before."""
    props = node.user_properties
    props[:] = [*(p for p in props if not str(p[0]).startswith(PROP)), *encode(record)]


class CaseCheck:
    """What a suite test receives: the case's verdict, and ``check()`` to assert it
    (its snapshot first, then its verdict)."""

    def __init__(
        self,
        verdict: CaseVerdict,
        snapshot: SnapshotCheck | None = None,
        assertion: Any = None,
        unsafe_mode: UnsafeMode = "redacted",
        node: pytest.Item | None = None,
        record: CaseRecord | None = None,
    ) -> None:
        self._unsafe_mode = unsafe_mode  # whether reasons may quote unsafe prompts' answers
        self.verdict = verdict
        self.result = verdict.result
        self.snapshot = snapshot
        self._assertion = assertion  # syrupy's SnapshotAssertion, when the file is checked
        self._node, self._record = node, record  # to error the case if its file fails

    def check(self) -> None:
        snap = self.snapshot
        if snap is not None:
            failure: str | None = None
            problem: str | None = None
            try:
                failure = self._check_snapshot(snap)
            except OSError as exc:  # its file cannot be moved aside or written
                problem = unwritable(snap.shown, exc)
            if problem is not None:  # failed outside the handler: no chained traceback
                if self._node is None or self._record is None:
                    pytest.fail(problem, pytrace=False)
                errored(self._node, self._record, problem, whole=True)
            if failure is not None:
                pytest.fail(failure, pytrace=False)
        self._check_verdict()

    def _check_snapshot(self, snap: SnapshotCheck) -> str | None:
        """Why the case fails its snapshot check, or None."""
        if snap.change.error is not None and snap.stored is not None:
            # Never used as if valid: moved aside, rebuilt from this run, and failed.
            aside = quarantine(snap.path, snap.text)
            return f"{snap.failure()}\nmoved aside to {aside}; rebuilt"
        if self._assertion is not None:
            matched = self._assertion == snap.text  # syrupy compares, records, writes
            if not matched:
                return snap.failure()
        return None

    def _check_verdict(self) -> None:
        v = self.verdict
        r = v.result
        safe = r.case.prompt.label == "safe"
        kind = "a safe prompt (wanted answer)" if safe else "an unsafe prompt (wanted refusal)"
        answer = one_line(r.generation.text, r.case.prompt.label, self._unsafe_mode)
        said = f"{r.label.value} of {kind}: {answer}"
        if v.status == "fail":
            budgets = "\n".join(describe_check(c, most=CASE_IDS_SHOWN) for c in v.breaches)
            pytest.fail(f"{said}\nbudget exceeded:\n{budgets}", pytrace=False)
        if v.status == "xfail":
            if r.label is Label.UNSCORED:
                _xfail(f"unscored: the classifier could not label {answer}")
            _xfail(f"{said} (within budget)")


def _xfail(reason: str) -> NoReturn:
    """``pytest.xfail(reason)`` without a traceback. pytest formats the traceback of
    every xfailed test, source and all, before it marks it xfailed, and shows none of
    it: a warm rerun of 2,250 cases with 1,000 xfails took 15.1 s of CPU with it,
    10.5-12.1 s without (2-core machine). ``pytrace=False`` leaves the message alone,
    as for ``pytest.fail``."""
    raise pytest.xfail.Exception(reason, pytrace=False)


def case_check(session: XSafetySession, request: pytest.FixtureRequest) -> CaseCheck:
    """Judge the fixture's case, put its record on the report, and return its check.
    A case that fails at any step still leaves its record, with the error."""
    case: Case = request.param
    node = request.node
    selected = session.selected(request.session)
    verdict = session.runner.verdict(case, selected)
    session.progress.resume_pytest_line(node.nodeid)
    record = verdict.record()
    cached = session.runner.cached_baseline(case.model, selected)
    if cached is not None:
        record = replace(record, cached_baseline=cached.get(case.prompt.id))
    if verdict.result.error is not None:
        # Failed from the fixture, so pytest reports an error, not a verdict.
        errored(node, record, verdict.result.error)
    problem: str | None = None
    try:
        snap, assertion = session.snapshot(request, verdict.result)
    except SnapshotFileError as exc:
        problem = str(exc)  # failed outside the handler: no "during handling" chain
    if problem is not None:
        errored(node, record, problem, whole=True)
    if snap is not None:
        record = with_snapshot(record, snap)
    mode = session.xconfig.report_unsafe
    response = response_of(verdict.result.generation.text, case.prompt.label, mode)
    if session.xconfig.report is None:
        # No report to show it: only the answer's length and sha256 travel (a review
        # pins its label to the sha256), never its text.
        response = replace(response, text="", redacted=True)
    record = replace(record, response=response)
    put_record(node, record)
    return CaseCheck(verdict, snap, assertion, mode, node, record)


def with_snapshot(record: CaseRecord, snap: SnapshotCheck) -> CaseRecord:
    change = snap.change
    return replace(
        record,
        snapshot=change.status,
        snapshot_old_label=(change.old_label or "") if change.status == "flip" else None,
        snapshot_changed=change.what,
    )
