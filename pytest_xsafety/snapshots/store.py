"""The snapshot file store: where each case's file lives, how it is written, and
which files no prompt of the suite owns any more.

Files are written through a temporary file and a rename; a stored file that
cannot be read is moved aside and rebuilt, never used as if valid.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_xsafety.core.choices import DriftPolicy, UnsafeMode
from pytest_xsafety.core.names import file_name, inside
from pytest_xsafety.core.records import Case, CaseResult, Prompt
from pytest_xsafety.snapshots.document import (
    Change,
    compare_texts,
    failure_message,
    render,
    snapshot_of,
)
from pytest_xsafety.snapshots.manifest import (
    MANIFEST,
    manifest_changes,
    read_manifest,
    render_manifest,
    update_differences,
    with_backend,
)

SUFFIX = ".json"


def safe_name(part: str) -> str:
    """A path component for a model, strategy, type or id: the name itself when it is
    valid (see :mod:`pytest_xsafety.core.names`), else an escape that cannot leave the
    folder."""
    return file_name(part)


def case_relpath(case: Case) -> Path:
    p = case.prompt
    return (
        Path(safe_name(case.model))
        / safe_name(case.strategy)
        / f"{safe_name(p.type)}-{safe_name(p.id)}{SUFFIX}"
    )


class SnapshotFileError(Exception):
    """A case's snapshot file that cannot be read or written: the case errors with
    this message (it names the file and the fix), and the run goes on."""


def file_problem(shown: str, exc: OSError | UnicodeDecodeError) -> SnapshotFileError:
    """What is wrong with the snapshot file ``shown``, and what to do about it."""
    if isinstance(exc, UnicodeDecodeError):
        why = f"not UTF-8 text ({exc.reason} at byte {exc.start}); delete it, then "
        why += "--snapshot-update records it again"
    elif exc.errno == errno.ENAMETOOLONG:
        size = len(Path(shown).name.encode())
        why = f"file name too long ({size} bytes; most file systems allow 255): shorten "
        why += "the prompt id"
    elif isinstance(exc, IsADirectoryError):
        why = "is a folder; remove it, then --snapshot-update records the case"
    else:
        why = f"cannot be read or written ({exc.strerror or exc}); fix its permissions or "
        why += "delete it, then --snapshot-update records it again"
    return SnapshotFileError(f"snapshot {shown}: {why}")


def unwritable(shown: str, exc: OSError) -> str:
    """Why the snapshot file ``shown`` could not be moved aside or written, and the fix."""
    where = exc.filename2 or exc.filename
    what = f"{exc.strerror or exc}: {Path(where).name}" if where else f"{exc.strerror or exc}"
    return (
        f"snapshot {shown}: cannot be moved aside or written ({what}); remove what is in "
        "the way or make the folder writable, then rerun"
    )


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and a rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class SnapshotCheck:
    """A case's new document against the stored file; ``asserted`` when the stored
    file exists or is being recorded (``--snapshot-update``)."""

    case_id: str
    path: Path
    shown: str  # the path as printed
    text: str
    stored: str | None
    change: Change
    asserted: bool

    def failure(self) -> str:
        return failure_message(self.case_id, self.shown, self.change, self.stored or "", self.text)

    def properties(self) -> list[tuple[str, str]]:
        """What the controller needs for the drift summary (names without the prefix)."""
        props: list[tuple[str, str]] = [("snapshot", self.change.status)]
        if self.change.status == "flip":
            props.append(("snapshot_old_label", self.change.old_label or ""))
        if self.change.what:
            props.append(("snapshot_changed", ",".join(self.change.what)))
        return props


@dataclass(frozen=True)
class Snapshots:
    """Where a run's snapshots live and how they are judged."""

    root: Path
    rootpath: Path
    policy: DriftPolicy = "label"
    unsafe: UnsafeMode = "redacted"
    update: bool = False

    # Every path a snapshot is read from, written to or deleted at comes from these,
    # and each is checked to lie inside the snapshot folder.
    def group_dir(self, model: str, strategy: str) -> Path:
        return inside(self.root, self.root / safe_name(model) / safe_name(strategy))

    def path(self, case: Case) -> Path:
        return inside(self.root, self.root / case_relpath(case))

    def delete(self, path: Path) -> None:
        inside(self.root, path).unlink(missing_ok=True)

    def shown(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.rootpath))
        except ValueError:
            return str(path)

    def checked(self, model: str, strategy: str) -> bool:
        """Snapshots of a group are checked when its directory exists, or recorded."""
        return self.update or self.group_dir(model, strategy).is_dir()

    def check(self, result: CaseResult) -> SnapshotCheck:
        case = result.case
        path = self.path(case)
        text = render(snapshot_of(result, self.unsafe))
        checked = self.checked(case.model, case.strategy)
        try:
            stored = read_text(path) if checked else None
        except (OSError, UnicodeDecodeError) as exc:
            raise file_problem(self.shown(path), exc) from None
        return SnapshotCheck(
            case.case_id,
            path,
            self.shown(path),
            text,
            stored,
            compare_texts(stored, text),
            checked and (stored is not None or self.update),
        )

    def accepts(self, stored: str, new_text: str) -> bool:
        """syrupy's comparison: exact while recording, else the drift policy."""
        if self.update:
            return stored == new_text
        return compare_texts(stored, new_text).accepted(self.policy)

    def manifest_path(self, model: str, strategy: str) -> Path:
        return self.group_dir(model, strategy) / MANIFEST

    def manifest_changes(self, model: str, strategy: str, current: Mapping[str, Any]) -> list[str]:
        return manifest_changes(read_manifest(self.manifest_path(model, strategy)), current)

    def record_manifest(
        self,
        model: str,
        strategy: str,
        current: Mapping[str, Any],
        loaded: Mapping[str, str] | None,
    ) -> None:
        path = self.manifest_path(model, strategy)
        text = render_manifest(with_backend(current, loaded, read_manifest(path)))
        if read_text(path) != text:
            write_atomic(path, text)

    def update_conflict(self, model: str, strategy: str, current: Mapping[str, Any]) -> str | None:
        """Why ``--snapshot-update`` must not rewrite a group: its manifest was recorded
        with another backend or from another suite (rewriting it would replace, and
        delete as unused, snapshots a run of this kind cannot stand for)."""
        differs = update_differences(read_manifest(self.manifest_path(model, strategy)), current)
        if not differs:
            return None
        return (
            f"--snapshot-update would rewrite {self.shown(self.group_dir(model, strategy))}, "
            f"recorded with another {' and '.join(differs)}, and delete the files for "
            "prompts this run does not have. Delete that folder to re-record it, or pass "
            "--xsafety-snapshot-dir to record elsewhere"
        )

    def unchecked(
        self, model: str, strategy: str, ran: set[Path], prompts: Sequence[Prompt]
    ) -> list[Path]:
        """A group's recorded case files (for prompts of the whole suite) that this run
        did not check: a manifest rewritten now would wrongly claim them too."""
        names = {case_relpath(Case(model, strategy, p)).name for p in prompts}
        folder = self.group_dir(model, strategy)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob(f"*{SUFFIX}") if p.name in names and p not in ran)

    def unused(self, model: str, strategy: str, prompts: Sequence[Prompt]) -> list[Path]:
        """Files in a group's directory for no prompt of the (whole, unsampled) suite."""
        expected = {case_relpath(Case(model, strategy, p)).name for p in prompts}
        return unused_files(self.group_dir(model, strategy), expected)

    def sweep(
        self, groups: Sequence[tuple[str, str]], prompts: Sequence[Prompt], delete: bool
    ) -> list[Path]:
        """Unused files of the checked ``groups`` (see :meth:`unused`); deleted when
        ``delete`` (``--snapshot-update`` without ``--snapshot-no-cleanup``)."""
        found = [p for g in groups if self.group_dir(*g).is_dir() for p in self.unused(*g, prompts)]
        if delete:
            for path in found:
                self.delete(path)
        return found


def quarantine(path: Path, text: str) -> Path:
    """Move an unreadable snapshot aside (``<name>.corrupt``, kept for a look, not
    read again) and write ``text`` in its place; returns where it went."""
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    write_atomic(path, text)
    return aside


def unused_files(group_dir: Path, expected: set[str]) -> list[Path]:
    """Snapshot files in ``group_dir`` whose name is not in ``expected``."""
    if not group_dir.is_dir():
        return []
    return sorted(
        p for p in group_dir.glob(f"*{SUFFIX}") if p.name != MANIFEST and p.name not in expected
    )
