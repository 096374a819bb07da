"""Small text helpers every layer shares: hashing, excerpts, "did you mean", TOML.

One definition each, so that the 80-character excerpt limit, the sha256 of a
text and the suggestion wording are the same in the terminal, the snapshots,
the report and every usage error.
"""

from __future__ import annotations

import difflib
import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Characters of a response kept where it is shown short or redacted.
EXCERPT_CHARS = 80


HEX = frozenset("0123456789abcdef")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def is_sha256(value: object) -> bool:
    """Whether ``value`` is a sha256 as this package writes it: 64 lower-case hex digits."""
    return isinstance(value, str) and len(value) == 64 and all(c in HEX for c in value)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """One line, at most ``limit`` characters, for test reasons and summaries."""
    flat = " ".join(text.split())
    if not flat:
        return "(empty response)"
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def clip(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters for text quoted in an error (a
    server's answer): cut at a word boundary, saying how long the whole was."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    head = flat[:limit]
    word = head.rsplit(" ", 1)[0]
    head = word if len(word) > limit // 2 else head  # a text without spaces: cut anyway
    return f"{head}... ({len(flat)} chars in all)"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or ``""``."""
    close = difflib.get_close_matches(name, list(known), 1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def read_toml(path: Path) -> Mapping[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


class UsageError(ValueError):
    """A setting that cannot be used; the message names the file or option, the key
    and the fix. The plugin turns every one into a one-line ``pytest.UsageError``."""
