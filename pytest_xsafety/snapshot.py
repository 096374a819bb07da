"""Snapshot stage: a case's result as a reviewable document, and what changed.

A snapshot is one JSON file per case, ``<dir>/<model>/<strategy>/<type>-<id>.json``,
written for a person reviewing a pull request: a fixed key order, long text cut
into lines of at most :data:`WIDTH` characters (a list of strings whose
concatenation is the text, so nothing is lost), the prompt as a sha256 only,
and the strategy's messages with the prompt replaced by ``{prompt}``.

Responses to unsafe prompts are redacted by default (the one policy in
:mod:`.redaction`): only their length and sha256 are kept, so a repository does not
collect harmful generated text, while label flips and (through the sha256) text
drift are still seen. Wherever a response echoes the prompt (:data:`ECHO_MIN` or more
characters in common), the echo is blanked, so no stored text reproduces the
suite's prompts.

Each model x strategy directory also holds ``_manifest.json``: what pins the
responses (backend, weights, dtype, device, library versions, decoding,
strategy fingerprint, classifier), so a changed response can be traced to a
changed pin. This module knows nothing of pytest or syrupy.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pytest_xsafety.names import file_name, inside
from pytest_xsafety.records import Case, Label, Prompt
from pytest_xsafety.redaction import UNSAFE_MODES, UnsafeMode, redacts

if TYPE_CHECKING:
    from pytest_xsafety.runner import CaseResult, Runner

SCHEMA = 1
WIDTH = 72
ECHO_MIN = 25
PROMPT_PLACEHOLDER = "{prompt}"
EXCERPT_PLACEHOLDER = "{prompt excerpt}"
MANIFEST = "_manifest.json"
SUFFIX = ".json"

Status = Literal["unchanged", "drift", "flip", "new"]
DriftPolicy = Literal["label", "text"]
DRIFT_POLICIES: tuple[DriftPolicy, ...] = ("label", "text")
__all__ = ["UNSAFE_MODES", "UnsafeMode"]  # re-exported for the option table


class SnapshotFormatError(ValueError):
    """A stored snapshot that is not a document this module wrote."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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
        shown = blank_echoes(g.text, prompt.text)
        responses.append(
            ResponseRecord(
                sha256=sha256(g.text),
                chars=len(g.text),
                tokens=g.new_tokens,
                truncated=g.truncated,
                text=None if redact else shown,
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
    )


def _dump(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


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
    }
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
    labels = [_get(doc, "label", str, "snapshot")] + ([first] if first is not None else [])
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
    if old.label != new.label:
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
    if len(old.responses) != len(new.responses) or not all(
        a.same_as(b) for a, b in zip(old.responses, new.responses, strict=True)
    ):
        what.append("responses")
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


def safe_name(part: str) -> str:
    """A path component for a model, strategy, type or id: the name itself when it is
    valid (see :mod:`pytest_xsafety.names`), else an escape that cannot leave the folder."""
    return file_name(part)


def case_relpath(case: Case) -> Path:
    p = case.prompt
    return (
        Path(safe_name(case.model))
        / safe_name(case.strategy)
        / f"{safe_name(p.type)}-{safe_name(p.id)}{SUFFIX}"
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
        stored = read_text(path) if checked else None
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
        stored = read_manifest(self.manifest_path(model, strategy)) or {}
        differs = []
        for section, key, what in (("pins", "backend", "backend"), ("suite", "sha256", "suite")):
            old, new = (_section(doc, section).get(key) for doc in (stored, current))
            if old and new and old != new:
                differs.append(f"{what} {_short(str(old))} (this run: {_short(str(new))})")
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


# Manifest ---------------------------------------------------------------------

COMPARED_SECTIONS = ("pins", "decoding", "strategy", "classifier")


def manifest(
    *,
    model: str,
    pins: Mapping[str, str],
    decoding: Mapping[str, Any],
    strategy: str,
    fingerprint: str,
    classifier: str,
    suite: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What pins a model x strategy group's responses, computable without loading the model.
    ``suite`` (name, sha256) is the suite file the snapshots were recorded from."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "model": model,
        "pins": dict(sorted(pins.items())),
        "decoding": dict(sorted(decoding.items())),
        "strategy": {"name": strategy, "fingerprint": fingerprint},
        "classifier": classifier,
    }
    if suite is not None:
        doc["suite"] = dict(suite)
    return doc


def _section(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name)
    return value if isinstance(value, Mapping) else {}


def group_manifest(runner: Runner, model: str, strategy: str) -> dict[str, Any]:
    """The manifest of a model x strategy group of ``runner``, without loading the model."""
    config = runner.config
    return manifest(
        suite={"name": runner.suite.name, "sha256": runner.suite.sha256},
        model=model,
        pins=runner.pins(model),
        decoding={
            "greedy": True,
            "max_new_tokens": runner.max_new_tokens(model),
            "batch_size": config.batch_size,
            "seed": config.seed,
        },
        strategy=strategy,
        fingerprint=runner.strategies[strategy].fingerprint(),
        classifier=f"{runner.classifier.name}=={runner.classifier.version}",
    )


def with_backend(
    current: Mapping[str, Any], loaded: Mapping[str, str] | None, stored: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``current`` plus ``backend``: what the loaded backend reported, or, when the
    responses came from the cache without loading it, the stored report if the
    pins are unchanged (so a warm rerun does not drop it)."""
    out = dict(current)
    if loaded:
        out["backend"] = dict(sorted(loaded.items()))
    elif stored and stored.get("pins") == current["pins"] and "backend" in stored:
        out["backend"] = stored["backend"]
    return out


def render_manifest(data: Mapping[str, Any]) -> str:
    return _dump(data)


def read_manifest(path: Path) -> dict[str, Any] | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _flat(data: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for section in COMPARED_SECTIONS:
        value = data.get(section)
        if isinstance(value, Mapping):
            prefix = "" if section in ("pins", "decoding") else f"{section} "
            out.update({f"{prefix}{k}": str(v) for k, v in value.items()})
        elif value is not None:
            out[section] = str(value)
    return out


def manifest_changes(stored: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """``torch: 2.12.0 -> 2.13.0`` lines for every compared pin that differs."""
    if stored is None:
        return []
    old, new = _flat(stored), _flat(current)
    return [
        f"{key}: {_short(old.get(key))} -> {_short(new.get(key))}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def _short(value: str | None) -> str:
    if value is None:
        return "(none)"
    return value[:16] if re.fullmatch(r"[0-9a-f]{40,}", value) else value


# Drift summary ----------------------------------------------------------------


@dataclass(frozen=True)
class CaseStatus:
    """One case's snapshot outcome, as the controller learns it from a report."""

    case_id: str
    status: Status
    label: str
    old_label: str | None = None
    what: tuple[str, ...] = ()
    prompt: str = ""


@dataclass
class DriftSummary:
    directory: str
    policy: DriftPolicy
    update: bool
    cases: list[CaseStatus] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)  # paths, relative for display
    unused_deleted: bool = False
    manifests: dict[str, list[str]] = field(default_factory=dict)  # group -> changes
    # group -> (case files checked, recorded files not checked): manifest not rewritten
    partial: dict[str, tuple[int, int]] = field(default_factory=dict)

    def count(self, status: Status) -> int:
        return sum(1 for c in self.cases if c.status == status)

    def lines(self, most: int = 10) -> list[str]:
        """The drift summary: counts, manifest changes, then flips, drift, new, unused."""
        counts = (
            f"{self.count('unchanged')} unchanged, {self.count('drift')} text drift, "
            f"{self.count('flip')} label flips, {self.count('new')} new, "
            f"{len(self.unused)} unused"
        )
        mode = "recorded by --snapshot-update" if self.update else f"drift policy {self.policy}"
        out = [f"snapshots in {self.directory} ({mode}): {counts}"]
        verb = "rewritten" if self.update else "differs from the recorded one"
        for group, changes in sorted(self.manifests.items()):
            if group in self.partial:
                ran, left = self.partial[group]
                out.append(
                    f"manifest {group} not rewritten: this run re-recorded {ran} case file(s), "
                    f"{left} other(s) keep the recorded pins ({'; '.join(changes)}); run "
                    "--snapshot-update over all of them (a larger --xsafety-sample) to record them"
                )
                continue
            out.append(f"manifest {group} {verb}: {'; '.join(changes)}")
        flips = [c for c in self.cases if c.status == "flip"]
        if flips:
            out.append("label flips" + (" (recorded):" if self.update else ":"))
            for c in sorted(flips, key=lambda c: c.case_id):
                which = f" [{c.what[0]}]" if c.what else ""
                out.append(f"  {c.case_id}: {c.old_label} -> {c.label}{which}  {c.prompt!r}")
        drift = [c for c in self.cases if c.status == "drift"]
        if drift:
            tail = " (recorded)" if self.update else ", labels kept"
            out.append(f"text drift{tail}:")
            out += _listed([f"{c.case_id}: {', '.join(c.what)} changed" for c in drift], most)
        new = [c.case_id for c in self.cases if c.status == "new"]
        if new:
            hint = "recorded" if self.update else "not recorded; --snapshot-update records them"
            out.append(f"new ({hint}):")
            out += _listed(new, most)
        if self.unused:
            if self.unused_deleted:
                out.append("unused (deleted):")
            else:
                out.append("unused (no such prompt in the suite; --snapshot-update deletes them):")
            out += _listed(self.unused, most)
        return out


def _listed(items: Sequence[str], most: int) -> list[str]:
    ordered = sorted(items)
    shown = [f"  {item}" for item in ordered[:most]]
    if len(ordered) > most:
        shown.append(f"  ... and {len(ordered) - most} more")
    return shown


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
