"""pytest-xdist specifics: which worker this is, and a scheduler that keeps each
model x strategy group on one worker, so that the group is generated once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_CASE_IN_NODEID = re.compile(r"\[(?P<id>.+)\]$")


def worker_settings(workerinput: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    """(torch threads, worker index) for an xdist worker; (None, None) elsewhere.
    Workers share the cores: n workers x default threads oversubscribe the CPU."""
    if workerinput is None:
        return None, None
    threads = max(1, (os.cpu_count() or 1) // int(workerinput["workercount"]))
    worker = int(str(workerinput["workerid"]).removeprefix("gw") or 0)
    return threads, worker


def group_scheduler(config: Any, log: Any, groups: Mapping[str, str]) -> Any:
    """A ``LoadScopeScheduling`` whose scope is a case's group (``groups``: case id ->
    group); any other test is its own unit, as under ``--dist load``."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            match = _CASE_IN_NODEID.search(nodeid)
            if match and match["id"] in groups:
                return "xsafety:" + groups[match["id"]]
            return nodeid

    return GroupScheduling(config, log)
