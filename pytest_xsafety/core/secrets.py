"""The one scrubbing policy for secrets, wherever text leaves the process.

A run knows some secret values: the API keys in the environment variables that
model entries name (``api_key_env``), and the user, password and query values of
their URLs. Any of them can come back in text the plugin did not write: an
exception's message, a server's error body that echoes the request (its URL, its
``Authorization`` header), an object's repr in a traceback. Every sink passes its
text through :func:`scrub` (error causes on records, the wire and so JUnit XML,
terminal lines, test reports' tracebacks and captured output, report files,
snapshots and manifests), which replaces each value, in every form it travels in,
with ``***``: as written, URL-encoded, base64 (HTTP Basic sends
``base64(user:password)``), and ``user:password`` itself.

Values are registered per process by what reads them (:func:`remember`: the run
plan for every model entry it resolves, a backend for the key it reads) and stay
secret for the process's life. A value shorter than :data:`MIN_CHARS` is not
scrubbed on its own (every ``ab`` in a report would go), only inside the longer
forms it travels in (``user:password``, its base64, the whole URL).
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

MASK = "***"
MIN_CHARS = 4


def forms(value: str) -> set[str]:
    """``value`` as it may appear in text: plain, URL-encoded, base64."""
    encoded = value.encode()
    out = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        base64.b64encode(encoded).decode(),
        base64.urlsafe_b64encode(encoded).decode(),
    }
    # base64 pads to 4 characters; inside a longer text the padding may not follow.
    out |= {f.rstrip("=") for f in out}
    return {f for f in out if len(f) >= MIN_CHARS}


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL: user and password (as written and decoded),
    ``user:password`` (what HTTP Basic encodes), and every query value."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    if not (parts.scheme and parts.netloc):
        return []  # not a URL (a fake backend's regex option, say)
    out: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        user, _, password = userinfo.partition(":")
        out += [userinfo, f"{unquote(user)}:{unquote(password)}"]
        out += [user, unquote(user), password, unquote(password)]
    for pair in filter(None, parts.query.split("&")):
        value = pair.partition("=")[2]
        out += [value, unquote_plus(value)]
    return [v for v in out if v]


@dataclass(frozen=True)
class Secrets:
    """A set of secret values and the pattern that finds any of their forms."""

    values: frozenset[str] = frozenset()
    _pattern: re.Pattern[str] | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        found = {f for v in self.values for f in forms(v)}
        # Longest first, so a value inside another value's form never leaves a fragment.
        ordered = sorted(found, key=lambda f: (-len(f), f))
        pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        object.__setattr__(self, "_pattern", pattern)

    def scrub(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def __or__(self, values: Iterable[str]) -> Secrets:
        return Secrets(self.values | {v for v in values if v})

    def __repr__(self) -> str:
        return f"Secrets({len(self.values)} value(s))"  # never the values


_known = Secrets()
_lock = threading.Lock()


def remember(values: Iterable[str]) -> None:
    """Register secret values for this process; every later :func:`scrub` hides them."""
    global _known
    values = [v for v in values if v]
    with _lock:
        if set(values) - _known.values:
            _known = _known | values


def scrub(text: str) -> str:
    """``text`` with every registered secret, in every form, replaced by ``***``."""
    return _known.scrub(text)
