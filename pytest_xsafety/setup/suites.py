"""Suite stage: find, validate and sample a prompt suite.

A suite is a CSV with XSTest's columns ``id,prompt,type,label,focus,note``
(``label`` is ``safe`` or ``unsafe``), plus an optional ``pair`` column: the id of
the prompt's contrast twin (see :mod:`pytest_xsafety.setup.pairs`; XSTest's pairs are
derived from its layout). ``xstest`` resolves from an explicit path,
else the local cache, else the Hugging Face Hub at a pinned revision; every
suite records the sha256 of its file so a changed upstream file is visible.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_xsafety.core.install import pip_install
from pytest_xsafety.core.records import Prompt
from pytest_xsafety.core.text import UsageError, sha256_file
from pytest_xsafety.setup.pairs import (
    ContrastPair,
    contrast_pairs,
    pair_problem,
    with_xstest_pairs,
)

REQUIRED_COLUMNS = ("id", "prompt", "type", "label", "focus", "note")
PAIR = "pair"  # the optional column of contrast twins
# csv refuses a field over 128 KiB by default; a prompt may be longer (a long document
# to summarise), so suites are read with this bound instead.
FIELD_LIMIT = 64 * 2**20
LABELS = ("safe", "unsafe")

# XSTest v2 (Röttger et al., NAACL 2024). The same file is on GitHub
# (paul-rottger/xstest@d7bb5bd) and on the Hub (Paul/XSTest@f600c99).
XSTEST_SHA256 = "11783fb294ed017473ee53c207d71f2161c7672c8d0b037501e78387f801cb5a"
XSTEST_HUB_REPO = "Paul/XSTest"
XSTEST_HUB_REVISION = "f600c994b256f12867dfa5b3eb3d545a3e62f8b5"
XSTEST_HUB_FILE = "xstest_prompts.csv"
KNOWN_HASHES = {XSTEST_SHA256: "XSTest v2"}

# Ids and types become parts of test ids and snapshot file names.
_WORD = re.compile(r"[A-Za-z0-9_.-]+")


class SuiteError(UsageError):
    """A suite that cannot be used; the message names the file, the row and the fix."""


@dataclass(frozen=True)
class Suite:
    """A validated suite: its prompts in file order and where they came from."""

    name: str
    source: str
    sha256: str
    prompts: tuple[Prompt, ...]

    @property
    def known_as(self) -> str | None:
        """The published suite this file is byte-identical to, if any."""
        return KNOWN_HASHES.get(self.sha256)

    @property
    def pairs(self) -> tuple[ContrastPair, ...]:
        """Contrast pairs with both prompts in this (possibly sampled) suite."""
        return contrast_pairs(self.prompts)

    @property
    def hash_warning(self) -> str | None:
        """Set when the file claims to be XSTest but differs from the pinned v2 file."""
        if self.name == "xstest" and self.sha256 != XSTEST_SHA256:
            return (
                f"suite file {self.source} has sha256 {self.sha256[:12]}..., not XSTest v2 "
                f"({XSTEST_SHA256[:12]}...): results are not comparable with published ones"
            )
        return None

    def sample(self, per_type: int | None) -> Suite:
        """The first ``per_type`` prompts (by id) of each prompt type, in file order."""
        if per_type is None:
            return self
        taken: dict[str, list[Prompt]] = {}
        for p in sorted(self.prompts, key=lambda p: id_order(p.id)):
            bucket = taken.setdefault(p.type, [])
            if len(bucket) < per_type:
                bucket.append(p)
        keep = {p.id for bucket in taken.values() for p in bucket}
        return Suite(
            self.name, self.source, self.sha256, tuple(p for p in self.prompts if p.id in keep)
        )


def id_order(pid: str) -> tuple[int, int | str]:
    """Sort key for prompt ids: numeric ids numerically ("2" before "10"), then text."""
    return (0, int(pid)) if pid.isdigit() else (1, pid)


def parse_suite(path: Path, name: str | None = None) -> Suite:
    """Read and validate a suite CSV; every problem is a SuiteError naming file and row."""
    if not path.is_file():
        raise SuiteError(f"suite file {path} does not exist: pass --xsafety-suite=PATH to a CSV")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: not UTF-8 text ({exc}); save the suite as UTF-8 CSV") from exc
    if not text.strip():
        raise SuiteError(f"{path}: the file is empty; a suite needs a header and rows")
    # newline="": a line break inside a quoted prompt (U+2028, a form feed, \n) is
    # part of the prompt; str.splitlines() would cut the row there.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    limit = csv.field_size_limit(FIELD_LIMIT)  # the module's limit is global: restored below
    try:
        header = list(reader.fieldnames or [])
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        big = "larger than field limit" in str(exc)
        why = f"a field is larger than {FIELD_LIMIT // 2**20} MiB" if big else str(exc)
        line = reader.line_num + 1  # the line it was reading
        raise SuiteError(f"{path}:{line}: not a CSV this reads ({why})") from None
    finally:
        csv.field_size_limit(limit)
    twice = sorted({c for c in header if header.count(c) > 1 and c in (*REQUIRED_COLUMNS, PAIR)})
    if twice:
        raise SuiteError(
            f"{path}: column(s) {', '.join(twice)} appear more than once in the header; "
            "keep one of each"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise SuiteError(
            f"{path}: missing column(s) {', '.join(missing)}; a suite needs the header "
            f"{','.join(REQUIRED_COLUMNS)}"
        )
    if not rows:
        raise SuiteError(f"{path}: the file has a header but no prompts")
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        prompts.append(_prompt(row, f"{path}:{line}", seen, line))
    sha256 = sha256_file(path)
    name = name or path.stem
    if PAIR not in header and (name == "xstest" or sha256 == XSTEST_SHA256):
        prompts = list(with_xstest_pairs(prompts))
    problem = pair_problem(prompts)
    if problem is not None:
        pid, fix = problem
        raise SuiteError(f"{path}:{seen[pid]}: id {pid}: {fix}")
    return Suite(name=name, source=str(path), sha256=sha256, prompts=tuple(prompts))


def _prompt(row: dict[str, str | None], where: str, seen: dict[str, int], line: int) -> Prompt:
    """One validated row; ``seen`` maps the ids so far to their lines."""
    pid = (row.get("id") or "").strip()
    text_ = (row.get("prompt") or "").strip()
    ptype = (row.get("type") or "").strip()
    label = (row.get("label") or "").strip().lower()
    if not pid:
        raise SuiteError(f"{where}: empty id; every prompt needs a unique id")
    if not _WORD.fullmatch(pid):
        raise SuiteError(
            f"{where}: id {pid!r} may only use letters, digits, '_', '.', '-' "
            "(it becomes part of the test id and the snapshot file name)"
        )
    if pid in seen:
        raise SuiteError(f"{where}: duplicate id {pid!r} (first on line {seen[pid]})")
    seen[pid] = line
    if label not in LABELS:
        raise SuiteError(
            f"{where}: label {row.get('label')!r} for id {pid}; use 'safe' "
            "(the model should comply) or 'unsafe' (it should refuse)"
        )
    if not text_:
        raise SuiteError(f"{where}: empty prompt for id {pid}")
    if not _WORD.fullmatch(ptype):
        raise SuiteError(
            f"{where}: type {ptype!r} for id {pid}; types are non-empty and use "
            "letters, digits, '_', '.', '-'"
        )
    return Prompt(
        id=pid,
        text=text_,
        type=ptype,
        label="safe" if label == "safe" else "unsafe",
        focus=(row.get("focus") or "").strip(),
        note=(row.get("note") or "").strip(),
        pair=(row.get("pair") or "").strip() or None,
    )


Downloader = Callable[[Path], Path]


def hub_download(dest_dir: Path) -> Path:
    """Fetch XSTest from the Hub at the pinned revision into ``dest_dir``."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # the [hf] extra brings it
        raise SuiteError(
            f"downloading XSTest from the Hub needs huggingface_hub: {pip_install('hf')}, "
            "or pass --xsafety-suite=PATH/TO/xstest_prompts.csv"
        ) from exc
    try:
        fetched = hf_hub_download(
            repo_id=XSTEST_HUB_REPO,
            filename=XSTEST_HUB_FILE,
            repo_type="dataset",
            revision=XSTEST_HUB_REVISION,
        )
    except Exception as exc:  # the hub client raises many types; all mean "not fetched"
        raise SuiteError(
            f"XSTest is not in the local cache ({dest_dir}) and the Hub download of "
            f"{XSTEST_HUB_REPO}@{XSTEST_HUB_REVISION[:8]} failed: {str(exc).rstrip('. ')}. "
            "Pass --xsafety-suite=PATH/TO/xstest_prompts.csv to use a local copy."
        ) from exc
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / XSTEST_HUB_FILE
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(fetched, tmp)
    tmp.replace(target)  # atomic: an interrupted copy never looks like a cached file
    return target


def load_suite(spec: str, cache_dir: Path, download: Downloader = hub_download) -> Suite:
    """Resolve a suite by name (``xstest``) or path to a validated :class:`Suite`."""
    path = Path(spec).expanduser()
    if spec != "xstest" or path.is_file():
        if path.suffix.lower() != ".csv" and not path.is_file():
            raise SuiteError(
                f"unknown suite {spec!r}: use 'xstest' or the path of a CSV with columns "
                f"{','.join(REQUIRED_COLUMNS)}"
            )
        name = "xstest" if path.is_file() and sha256_file(path) == XSTEST_SHA256 else None
        return parse_suite(path, name=name or _suite_name(path))
    cached = cache_dir / "suites" / "xstest" / XSTEST_HUB_REVISION / XSTEST_HUB_FILE
    if not cached.is_file():
        cached = download(cached.parent)
    return parse_suite(cached, name="xstest")


def _suite_name(path: Path) -> str:
    # A file named like XSTest's is treated as XSTest, so a changed copy is flagged.
    return "xstest" if path.name == XSTEST_HUB_FILE else path.stem


def types_of(prompts: Sequence[Prompt]) -> list[str]:
    """Prompt types in order of first appearance."""
    return list(dict.fromkeys(p.type for p in prompts))
