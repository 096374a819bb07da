"""Snapshot stage: a case's result as a reviewable document, and what changed.

A snapshot is one JSON file per case, ``<dir>/<model>/<strategy>/<type>-<id>.json``,
written for a person reviewing a pull request: a fixed key order, long text cut
into lines of at most :data:`WIDTH` characters (a list of strings whose
concatenation is the text, so nothing is lost), the prompt as a sha256 only,
and the strategy's messages with the prompt replaced by ``{prompt}``.

Responses to unsafe prompts are redacted by default (the one policy in
:mod:`~pytest_xsafety.core.redaction`): only their length and sha256 are kept, so
a repository does not collect harmful generated text, while label flips and
(through the sha256) text drift are still seen. Wherever a response echoes the
prompt (:data:`ECHO_MIN` or more characters in common), the echo is blanked, so
no stored text reproduces the suite's prompts.

The file store is :mod:`~pytest_xsafety.snapshots.store`, the per-group
manifest :mod:`~pytest_xsafety.snapshots.manifest`. This module knows nothing of
pytest or syrupy.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_xsafety.core.choices import (
    LABEL_SOURCES,
    UNSAFE_MODES,
    DriftPolicy,
    SnapshotStatus,
    UnsafeMode,
)
from pytest_xsafety.core.records import CaseResult, Label
from pytest_xsafety.core.redaction import redacts
from pytest_xsafety.core.secrets import scrub
from pytest_xsafety.core.text import sha256_text

SCHEMA = 1
WIDTH = 72
ECHO_MIN = 25
PROMPT_PLACEHOLDER = "{prompt}"
EXCERPT_PLACEHOLDER = "{prompt excerpt}"
Status = SnapshotStatus
__all__ = ["UNSAFE_MODES", "CaseSnapshot", "Change", "Status", "parse", "render", "snapshot_of"]


class SnapshotFormatError(ValueError):
    """A stored snapshot that is not a document this module wrote."""


sha256 = sha256_text


def wrap(text: str, width: int = WIDTH) -> list[str]:
    """Pieces of at most ``width`` characters (plus a line end) that join back to ``text``.

    Lines are kept whole where they fit; longer ones are cut after the last
    space that fits, or at ``width`` where there is none.
    """
    pieces: list[str] = []
    for line in text.splitlines(keepends=True):
        while len(line.rstrip("\r\n")) > width:
            space = line.rfind(" ", 0, width)
            cut = space + 1 if space > 0 else width
            pieces.append(line[:cut])
            line = line[cut:]
        if line:
            pieces.append(line)
    return pieces


def blank_echoes(text: str, prompt: str, min_len: int = ECHO_MIN) -> str:
    """``text`` with every run of ``min_len`` or more characters it shares with
    ``prompt`` (ignoring case) replaced: by ``{prompt}`` when the run is the whole
    prompt, else by ``{prompt excerpt}``."""
    whole = prompt.strip()
    if len(whole) < min_len:
        return text
    fold = whole.lower() if len(whole.lower()) == len(whole) else whole
    while True:
        low = text.lower() if len(text.lower()) == len(text) else text
        match = difflib.SequenceMatcher(None, low, fold, autojunk=False).find_longest_match(
            0, len(low), 0, len(fold)
        )
        if match.size < min_len:
            return text
        mark = PROMPT_PLACEHOLDER if match.size == len(fold) else EXCERPT_PLACEHOLDER
        start, end = match.a, match.a + match.size
        run = text[start:end]
        if len(run.strip()) >= min_len:  # keep the spaces around an excerpt
            start += len(run) - len(run.lstrip())
            end -= len(run) - len(run.rstrip())
        text = text[:start] + mark + text[end:]


@dataclass(frozen=True)
class ResponseRecord:
    """One turn's answer. ``text`` (echoes blanked) when stored in full, None when
    redacted. ``sha256`` and ``chars`` are of the real, unblanked text."""

    sha256: str
    chars: int
    tokens: int
    truncated: bool
    text: str | None = None

    def same_as(self, other: ResponseRecord) -> bool:
        if self.sha256 != other.sha256:
            return False
        # A hand-edited text under an unchanged hash still counts as changed.
        return self.text is None or other.text is None or self.text == other.text


@dataclass(frozen=True)
class CaseSnapshot:
    prompt_id: str
    prompt_type: str
    expected: str
    prompt_sha256: str
    label: str
    classifier: str
    classifier_version: str
    messages: tuple[tuple[str, str], ...]  # (role, content), prompt as {prompt}
    responses: tuple[ResponseRecord, ...]
    first_label: str | None = None
    # Where ``label`` came from: the classifier, or a human review pinned to the
    # response (then ``classifier_label`` keeps what the classifier said).
    label_source: str = "classifier"
    classifier_label: str | None = None


def snapshot_of(result: CaseResult, unsafe: UnsafeMode = "redacted") -> CaseSnapshot:
    """The document for a case that got a verdict (not for an errored one)."""
    if result.error is not None:
        raise ValueError(f"{result.case.case_id}: errored cases have no snapshot")
    prompt = result.case.prompt
    redact = redacts(prompt.label, unsafe)
    texts = {r.text: i for i, r in enumerate(result.responses, 1)}
    messages = []
    for m in result.conversation:
        if m.role == "assistant" and m.content in texts:
            content = f"{{response {texts[m.content]}}}"  # stored below, not twice
        elif prompt.text:
            content = blank_echoes(m.content.replace(prompt.text, PROMPT_PLACEHOLDER), prompt.text)
        else:
            content = m.content
        messages.append((m.role, content))
    responses = []
    for g in result.responses:
        responses.append(
            ResponseRecord(
                sha256=sha256(g.text),
                chars=len(g.text),
                tokens=g.new_tokens,
                truncated=g.truncated,
                text=None if redact else blank_echoes(g.text, prompt.text),
            )
        )
    return CaseSnapshot(
        prompt_id=prompt.id,
        prompt_type=prompt.type,
        expected=prompt.label,
        prompt_sha256=sha256(prompt.text),
        label=result.label.value,
        classifier=result.classifier,
        classifier_version=result.classifier_version,
        messages=tuple(messages),
        responses=tuple(responses),
        first_label=result.first_label.value if result.first_label is not None else None,
        label_source=result.label_source,
        classifier_label=(
            result.classifier_label.value
            if result.label_source == "review" and result.classifier_label is not None
            else None
        ),
    )


def _dump(data: Mapping[str, Any]) -> str:
    # Scrubbed here, where the text is made, so a stored file and a new one compare alike.
    return scrub(json.dumps(data, indent=2, ensure_ascii=False)) + "\n"


def render(snap: CaseSnapshot) -> str:
    """The file's text: keys in a fixed order, the labels near the top."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "prompt": {
            "id": snap.prompt_id,
            "type": snap.prompt_type,
            "expected": snap.expected,
            "sha256": snap.prompt_sha256,
        },
        "label": snap.label,
        "label_source": snap.label_source,
    }
    if snap.classifier_label is not None:
        doc["classifier_label"] = snap.classifier_label
    if snap.first_label is not None:
        doc["first_label"] = snap.first_label
    doc["classifier"] = {"name": snap.classifier, "version": snap.classifier_version}
    doc["messages"] = [{"role": role, "content": wrap(c)} for role, c in snap.messages]
    responses = []
    for r in snap.responses:
        entry: dict[str, Any] = {
            "tokens": r.tokens,
            "truncated": r.truncated,
            "chars": r.chars,
            "sha256": r.sha256,
        }
        if r.text is not None:
            entry["text"] = wrap(r.text)
        responses.append(entry)
    doc["responses"] = responses
    return _dump(doc)


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise SnapshotFormatError(f"{where}: missing {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SnapshotFormatError(f"{where}: {key!r} has the wrong type")
    return value


def _lines(data: Mapping[str, Any], key: str, where: str) -> str:
    value = _get(data, key, list, where)
    if not all(isinstance(v, str) for v in value):
        raise SnapshotFormatError(f"{where}: {key!r} must be a list of strings")
    return "".join(value)


def parse(text: str) -> CaseSnapshot:
    """Read a snapshot file's text back (the inverse of :func:`render`)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotFormatError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SnapshotFormatError("not a JSON object")
    if doc.get("schema") != SCHEMA:
        raise SnapshotFormatError(f"schema {doc.get('schema')!r}, expected {SCHEMA}")
    prompt = _get(doc, "prompt", dict, "snapshot")
    classifier = _get(doc, "classifier", dict, "snapshot")
    messages = []
    for i, m in enumerate(_get(doc, "messages", list, "snapshot")):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise SnapshotFormatError(f"{where}: not an object")
        messages.append((_get(m, "role", str, where), _lines(m, "content", where)))
    responses = []
    for i, r in enumerate(_get(doc, "responses", list, "snapshot")):
        where = f"responses[{i}]"
        if not isinstance(r, dict):
            raise SnapshotFormatError(f"{where}: not an object")
        responses.append(
            ResponseRecord(
                sha256=_get(r, "sha256", str, where),
                chars=_get(r, "chars", int, where),
                tokens=_get(r, "tokens", int, where),
                truncated=_get(r, "truncated", bool, where),
                # Files recorded before redaction kept no text also hold a "head":
                # it is ignored, and --snapshot-update drops it.
                text=_lines(r, "text", where) if "text" in r else None,
            )
        )
    first = doc.get("first_label")
    by_classifier = doc.get("classifier_label")
    labels = [_get(doc, "label", str, "snapshot")] + [
        v for v in (first, by_classifier) if v is not None
    ]
    # Files written before reviews existed have no label_source: the classifier's.
    source = doc.get("label_source", "classifier")
    if source not in LABEL_SOURCES:
        raise SnapshotFormatError(f"unknown label_source {source!r}")
    for value in labels:
        try:
            Label(value)
        except ValueError:
            raise SnapshotFormatError(f"unknown label {value!r}") from None
    return CaseSnapshot(
        prompt_id=_get(prompt, "id", str, "prompt"),
        prompt_type=_get(prompt, "type", str, "prompt"),
        expected=_get(prompt, "expected", str, "prompt"),
        prompt_sha256=_get(prompt, "sha256", str, "prompt"),
        label=labels[0],
        classifier=_get(classifier, "name", str, "classifier"),
        classifier_version=_get(classifier, "version", str, "classifier"),
        messages=tuple(messages),
        responses=tuple(responses),
        first_label=first,
        label_source=source,
        classifier_label=by_classifier,
    )


@dataclass(frozen=True)
class Change:
    """How a case's new document differs from the stored one."""

    status: Status
    old_label: str | None = None
    new_label: str | None = None
    what: tuple[str, ...] = ()  # drift: which parts changed
    error: str | None = None  # the stored file could not be read

    def accepted(self, policy: DriftPolicy) -> bool:
        """Whether the case passes its snapshot check under ``policy``."""
        if self.error is not None or self.status == "flip":
            return False
        return self.status != "drift" or policy == "label"


def compare(old: CaseSnapshot | None, new: CaseSnapshot) -> Change:
    if old is None:
        return Change("new", new_label=new.label)
    same_responses = len(old.responses) == len(new.responses) and all(
        a.same_as(b) for a, b in zip(old.responses, new.responses, strict=True)
    )
    if old.label != new.label:
        if old.label_source != new.label_source and same_responses:
            # A review (or its removal) relabelled the same answer: a person's
            # correction, not a change in the model; drift, shown and re-recorded.
            return Change("drift", old.label, new.label, ("label source",))
        return Change("flip", old.label, new.label)
    if old.first_label != new.first_label:
        # Interactive: the first answer's label decides whether a second turn is sent.
        none = "(none)"
        return Change(
            "flip", old.first_label or none, new.first_label or none, ("first-turn label",)
        )
    what = []
    if (old.prompt_sha256, old.prompt_type, old.expected) != (
        new.prompt_sha256,
        new.prompt_type,
        new.expected,
    ):
        what.append("prompt")
    if (old.classifier, old.classifier_version) != (new.classifier, new.classifier_version):
        what.append("classifier")
    if old.messages != new.messages:
        what.append("messages")
    if not same_responses:
        what.append("responses")
    if old.label_source != new.label_source:
        what.append("label source")
    return Change("drift" if what else "unchanged", old.label, new.label, tuple(what))


def compare_texts(stored: str | None, new_text: str) -> Change:
    """:func:`compare` on file texts; an unreadable stored file is a change with ``error``."""
    new = parse(new_text)
    if stored is None:
        return compare(None, new)
    try:
        old = parse(stored)
    except SnapshotFormatError as exc:
        return Change("drift", None, new.label, ("unreadable",), error=str(exc))
    return compare(old, new)


def diff(stored: str, new_text: str, context: int = 2) -> list[str]:
    """A unified diff of the stored file against the new document."""
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            stored.splitlines(), new_text.splitlines(), "stored", "now", n=context, lineterm=""
        )
    ]


def failure_message(case_id: str, path: str, change: Change, stored: str, new_text: str) -> str:
    """Why a case fails its snapshot check, with the diff."""
    if change.error is not None:
        head = f"snapshot {path} cannot be read ({change.error}); --snapshot-update rewrites it"
    elif change.status == "flip":
        which = f" ({change.what[0]})" if change.what else ""
        head = (
            f"snapshot label flip{which}: {case_id} was {change.old_label}, "
            f"now {change.new_label} ({path})"
        )
    else:
        head = (
            f"snapshot drift (--xsafety-drift text): {case_id}: {', '.join(change.what)} "
            f"changed, label {change.new_label} kept ({path})"
        )
    return "\n".join([head, *diff(stored, new_text)])
