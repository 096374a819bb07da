"""The one redaction policy for generated text, wherever a response is shown or stored.

A response to an unsafe prompt may be the harmful text the suite probes for, so by
default it is never shown or stored: terminal reasons, JUnit properties, report
files and snapshots carry its label, length and sha256 instead, which still show
a label flip or a changed text. The user opts in to the text per destination
(``--xsafety-report-unsafe full`` for the terminal, JUnit XML and the report;
``--xsafety-snapshot-unsafe full`` for snapshot files). Responses to safe prompts
are shown (the terminal keeps an 80-character excerpt).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_xsafety.core.choices import UnsafeMode
from pytest_xsafety.core.text import excerpt, sha256_text


@dataclass(frozen=True)
class Shown:
    """A response as it may be shown: ``text`` is None when redacted."""

    text: str | None
    chars: int
    sha256: str

    @property
    def redacted(self) -> bool:
        return self.text is None


def redacts(expected: str, mode: UnsafeMode = "redacted") -> bool:
    """Whether a response to a prompt expected ``safe`` or ``unsafe`` is withheld."""
    return expected == "unsafe" and mode == "redacted"


def shown(text: str, expected: str, mode: UnsafeMode = "redacted") -> Shown:
    return Shown(None if redacts(expected, mode) else text, len(text), sha256_text(text))


def one_line(text: str, expected: str, mode: UnsafeMode = "redacted") -> str:
    """The response in a terminal reason: a quoted excerpt, or what stands in for it."""
    s = shown(text, expected, mode)
    if s.text is not None:
        return repr(excerpt(s.text))
    return stand_in(s.chars, s.sha256)


def stand_in(chars: int | None, sha256: str) -> str:
    """What stands in for a redacted response wherever it would be shown."""
    size = "" if chars is None else f"{chars} chars, "
    return f"[response redacted: {size}sha256 {sha256[:12]}; --xsafety-report-unsafe full shows it]"
