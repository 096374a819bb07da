"""The syrupy extension behind case snapshots: one JSON file per case.

syrupy reads, writes (``--snapshot-update``), counts and diffs the files; where
they live and when a stored file still matches are the plugin's: a case's file
is ``<snapshot dir>/<model>/<strategy>/<type>-<id>.json``, and a match follows
the drift policy, so text drift under ``--xsafety-drift label`` is a pass here
and is reported by the plugin. The class is made per session, closing over the
plugin's settings, because syrupy instantiates extensions without arguments.

syrupy ties a snapshot file to a test module by name (``__snapshots__/<module>/``),
which this layout does not follow, so its unused-snapshot discovery is turned
off here and the plugin finds unused files per model x strategy directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from syrupy.data import SnapshotCollections
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode
from syrupy.location import PyTestLocation
from syrupy.types import SerializableData, SnapshotIndex

Locate = Callable[[Any], Path]  # a pytest item -> its snapshot file
Accept = Callable[[str, str], bool]  # (stored, new) -> whether the stored file matches


def case_extension(locate: Locate, accept: Accept) -> type[SingleFileSnapshotExtension]:
    class CaseSnapshotExtension(SingleFileSnapshotExtension):
        _write_mode = WriteMode.TEXT
        file_extension = "json"

        @classmethod
        def dirname(cls, *, test_location: PyTestLocation) -> str:
            return str(locate(test_location.item).parent)

        @classmethod
        def get_file_basename(cls, *, test_location: PyTestLocation, index: SnapshotIndex) -> str:
            return locate(test_location.item).stem

        @classmethod
        def matches_test_location(
            cls, *, test_location: PyTestLocation, snapshot_location: str
        ) -> bool:
            return Path(snapshot_location) == locate(test_location.item)

        def discover_snapshots(
            self, *, test_location: PyTestLocation, ignore_extensions: list[str] | None = None
        ) -> SnapshotCollections:
            return SnapshotCollections()

        def matches(
            self, *, serialized_data: SerializableData, snapshot_data: SerializableData
        ) -> bool:
            return accept(str(snapshot_data), str(serialized_data))

    return CaseSnapshotExtension
