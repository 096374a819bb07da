"""Names that become file names and test ids: identifiers, never paths.

Model and strategy names are the folders of snapshots (``<dir>/<model>/<strategy>/``)
and part of every test id and xdist group key. So a name starts with a letter or
digit and uses only letters, digits, ``.``, ``_`` and ``-``: ``.``, ``..``,
``x/y`` or ``a]b`` are refused where the name is defined. :func:`file_name` maps
any text to one path component that cannot leave its folder and never maps two
names to one, and :func:`inside` checks a path before it is written or deleted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pytest_xsafety.core.text import UsageError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_LENGTH = 100  # a file name; most filesystems allow 255 bytes
_PLAIN = re.compile(r"[A-Za-z0-9._-]")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a model or strategy name, or None when it can."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        return (
            f"name {name!r} is not an identifier: start with a letter or digit and use "
            "only letters, digits, '.', '_' and '-' (it becomes a folder name and part "
            "of every test id)"
        )
    if len(name) > MAX_LENGTH:
        return f"name {name[:20]!r}... is longer than {MAX_LENGTH} characters"
    return None


def case_clashes(names: Iterable[str]) -> tuple[str, str] | None:
    """Two names that differ only in case (one folder on macOS and Windows), if any."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            return other, name
    return None


def file_name(part: str) -> str:
    """One path component for ``part``: itself when it is a valid name, else escaped
    (``%XX`` per byte, ``%`` included, so distinct parts stay distinct; ``.`` and
    ``..`` escaped, so the component never means "this folder" or "the parent")."""
    if part in ("", ".", ".."):
        return "".join(f"%{b:02X}" for b in part.encode()) or "%"
    return "".join(
        ch if _PLAIN.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode()) for ch in part
    )


class PathEscapeError(UsageError):
    """A path that would leave the folder it must stay in."""


def inside(root: Path, path: Path) -> Path:
    """``path`` if it lies inside ``root`` (both resolved, links followed), else raise."""
    base = root.resolve()
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise PathEscapeError(f"refusing to touch {path}: it is outside {root}")
    return path
