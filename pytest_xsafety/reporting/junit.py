"""Controller-side case properties, added to pytest's JUnit XML once it is written.

Most of a case's properties travel on its test report (:mod:`.wire`) and pytest's
junitxml plugin writes them as they arrive. A contrast pair's outcome needs both
sides of the pair, so it is known only when the controller builds the report,
after junitxml has turned each case into a ``<testcase>``. :func:`add_pair_properties`
finds each case's ``<testcase>`` by its ``xsafety_*`` identity properties (not by
node id, which junitxml mangles) and appends ``xsafety_pair_id`` and
``xsafety_pair_outcome``; the file is replaced whole, never left half-written.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from pytest_xsafety.core.records import CaseRecord
from pytest_xsafety.reporting.wire import decode, pair_properties


def add_pair_properties(path: Path, records: Sequence[CaseRecord]) -> int:
    """Append each paired case's pair properties to its ``<testcase>`` in the JUnit
    XML at ``path``; return how many testcases got them."""
    late = {r.case_id: props for r in records if (props := pair_properties(r))}
    if not late:
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
    if done:
        tmp = path.with_name(f".{path.name}.xsafety-tmp")
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)
    return done
