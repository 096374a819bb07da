"""pytest-xdist specifics: which worker this is, and a scheduler that keeps each
model x strategy group on one worker, so that the group is generated once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_CASE_IN_NODEID = re.compile(r"\[(?P<id>.+)\]$")


def worker_settings(workerinput: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    """(workers, this worker's index) for an xdist worker; (None, None) elsewhere.
    Workers share the cores: the runner gives each busy worker its share."""
    if workerinput is None:
        return None, None
    workers = int(workerinput["workercount"])
    worker = int(str(workerinput["workerid"]).removeprefix("gw") or 0)
    return workers, worker


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
