"""The one scrubbing policy for secrets, wherever text leaves the process.

A run knows some secret values: the API keys in the environment variables that
model entries name (``api_key_env``), and the user info and query values of their
URLs. Any of them can come back in text the plugin did not write: an exception's
message, a server's error body that echoes the request (its URL, its
``Authorization`` header), an object's repr in a traceback. Every sink passes its
text through :func:`scrub` (error causes on records, the wire and so JUnit XML,
terminal lines, test reports' tracebacks and captured output, report files,
snapshots and manifests), which replaces each secret, in every form it travels in,
with ``***``: as written, URL-encoded and base64.

A secret is scrubbed in the phrases it travels in, whatever its length: ``Bearer
KEY`` (shown ``Bearer ***``), ``user:password`` (and so HTTP Basic's
``base64(user:password)``) and a query's ``name=value`` (shown ``name=***``).
Alone, only a value of at least :data:`MIN_CHARS` characters is: a short key such
as ``none`` or ``EMPTY`` (what local servers are given) would otherwise take every
such word out of a report. A URL's user name is not secret on its own when a
password follows it (``user``, ``admin``); without a password it is the
credential, and a value.

Secrets are registered per process by what reads them (:func:`remember`: the run
plan for every model entry it resolves, a backend for the key it reads) and stay
secret for the process's life.
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

MASK = "***"
MIN_CHARS = 8  # a value shorter than this is scrubbed only inside its phrases
MIN_PHRASE = 5  # a phrase shorter than this (``a=1``) says nothing secret


def forms(text: str) -> set[str]:
    """``text`` as it may appear: as written, URL-encoded, base64."""
    encoded = text.encode()
    out = {
        text,
        quote(text, safe=""),
        quote(text),
        quote_plus(text),
        base64.b64encode(encoded).decode(),
        base64.urlsafe_b64encode(encoded).decode(),
    }
    # base64 pads to 4 characters; inside a longer text the padding may not follow.
    return out | {f.rstrip("=") for f in out}


Phrase = tuple[str, str]  # (what stays shown, the secret): ("token=", "T")


@dataclass(frozen=True)
class Secrets:
    """Secret ``values`` (scrubbed alone when long enough) and the ``phrases`` they
    travel in (always scrubbed), and the pattern that finds any form of them."""

    values: frozenset[str] = frozenset()
    phrases: frozenset[Phrase] = frozenset()
    _masks: dict[str, str] = field(default_factory=dict, init=False, compare=False)
    _pattern: re.Pattern[str] | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        masks = {f: MASK for v in self.values if len(v) >= MIN_CHARS for f in forms(v)}
        for shown, secret in self.phrases:
            if len(shown + secret) >= MIN_PHRASE:
                masks.update(dict.fromkeys(forms(shown + secret), MASK))
                masks[shown + secret] = shown + MASK  # as written: its name stays readable
        # Longest first, so a secret inside a longer one never leaves a fragment.
        ordered = sorted(masks, key=lambda f: (-len(f), f))
        pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        object.__setattr__(self, "_masks", masks)
        object.__setattr__(self, "_pattern", pattern)

    def scrub(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: self._masks[m.group()], text)

    def __or__(self, other: Secrets) -> Secrets:
        return Secrets(self.values | other.values, self.phrases | other.phrases)

    def __repr__(self) -> str:
        return f"Secrets({len(self.values)} value(s), {len(self.phrases)} phrase(s))"


def key_secrets(key: str) -> Secrets:
    """An API key, and the header it is sent in."""
    if not key:
        return Secrets()
    return Secrets(frozenset({key}), frozenset({("Bearer ", key)}))


def url_secrets(url: str) -> Secrets:
    """A URL's secrets: user info (``user:password`` and the password, or a user
    alone, which is then the credential) and each query ``name=value`` and value,
    as written and decoded. Nothing for a text that is not a URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return Secrets()
    if not (parts.scheme and parts.netloc):
        return Secrets()  # not a URL (a fake backend's regex option, say)
    values: set[str] = set()
    phrases: set[Phrase] = set()
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        user, colon, password = userinfo.partition(":")
        if colon:
            phrases |= {("", userinfo), ("", f"{unquote(user)}:{unquote(password)}")}
            values |= {password, unquote(password)}
        else:
            values |= {user, unquote(user)}
    for pair in filter(None, parts.query.split("&")):
        name, equals, value = pair.partition("=")
        phrases |= {(name + equals, value), (f"{unquote_plus(name)}=", unquote_plus(value))}
        values |= {value, unquote_plus(value)}
    return Secrets(frozenset(values - {""}), frozenset(phrases))


_known = Secrets()
_lock = threading.Lock()


def remember(secrets: Secrets) -> None:
    """Register secrets for this process; every later :func:`scrub` hides them."""
    global _known
    with _lock:
        if not (secrets.values <= _known.values and secrets.phrases <= _known.phrases):
            _known = _known | secrets


def scrub(text: str) -> str:
    """``text`` with every registered secret, in every form, replaced by ``***``."""
    return _known.scrub(text)
