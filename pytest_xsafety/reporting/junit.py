"""Controller-side case properties, added to pytest's JUnit XML once it is written.

Most of a case's properties travel on its test report (:mod:`.wire`) and pytest's
junitxml plugin writes them as they arrive. A contrast pair's outcome needs both
sides of the pair, so it is known only when the controller builds the report,
after junitxml has turned each case into a ``<testcase>``. :func:`add_late_properties`
finds each case's ``<testcase>`` by its ``xsafety_*`` identity properties (not by
node id, which junitxml mangles) and appends ``xsafety_pair_id`` and
``xsafety_pair_outcome``; likewise whether a case is in its group's review sample and
its group side's estimated human rate (``xsafety_sampled``, ``xsafety_estimate*``). The
file is replaced whole, never left half-written.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_xsafety.core.records import CaseRecord
from pytest_xsafety.engine.budgets import GroupSummary
from pytest_xsafety.reporting.wire import decode, pair_properties, sample_properties


def late_properties(
    records: Sequence[CaseRecord], summaries: Sequence[GroupSummary]
) -> dict[str, list[tuple[str, str]]]:
    """Per case id, the properties known only once the report is built."""
    by_group = {(s.model, s.strategy): s for s in summaries}
    late = {}
    for r in records:
        summary = by_group.get(r.group)
        estimate = summary.estimate_of(r.expected) if summary is not None else None
        if props := pair_properties(r) + sample_properties(r, estimate):
            late[r.case_id] = props
    return late


GATE_CASE = ("xsafety", "gate")  # classname, name of the run's own verdict testcase


def add_late_properties(
    path: Path, late: Mapping[str, Sequence[tuple[str, str]]], gate_failures: Sequence[str] = ()
) -> int:
    """Append each case's ``late`` properties to its ``<testcase>`` in the JUnit XML at
    ``path``; return how many testcases got them. ``gate_failures``: why the run fails
    although no case did (an undecided budget, a side without one): they become one
    failing ``xsafety.gate`` testcase, so a JUnit reader is never green where the run
    is not."""
    if not late and not gate_failures:
        return 0
    tree = ET.parse(path)
    done = 0
    for case in tree.iter("testcase"):
        element = case.find("properties")
        if element is None:
            continue
        record = decode({p.get("name", ""): p.get("value") for p in element.iter("property")})
        props = late.get(record.case_id, []) if record is not None else []
        for name, value in props:
            ET.SubElement(element, "property", name=name, value=value)
        done += bool(props)
    suite = next(tree.iter("testsuite"), None)
    if gate_failures and suite is not None:
        case = ET.SubElement(suite, "testcase", classname=GATE_CASE[0], name=GATE_CASE[1])
        case.set("time", "0")
        failure = ET.SubElement(case, "failure", message=gate_failures[0])
        failure.text = "\n".join(gate_failures)
        for key in ("tests", "failures"):
            suite.set(key, str(int(suite.get(key, "0")) + 1))
        done += 1
    if done:
        tmp = path.with_name(f".{path.name}.xsafety-tmp")
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)
    return done
