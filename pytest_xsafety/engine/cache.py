"""Response cache: an SQLite database of generated responses, keyed by everything
that can change a response.

The key is the sha256 of a canonical JSON document holding the backend's pins
(backend, model id and revision or weights hash, chat template, dtype, device,
library versions: see :func:`pytest_xsafety.engine.backends.pins`), the rendered
messages and the decoding settings. Peers (lm-eval-harness, HELM, inspect_ai)
leave revision, dtype, device and library versions out of their keys; a gate
cannot, since any of them changes greedy output.

Every finished batch is committed at once, so an interrupted run keeps what it
finished. WAL mode and a busy timeout let xdist workers write concurrently. A
database that cannot be read is moved aside (``*.corrupt-<time>``) and rebuilt,
never used as if valid.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_xsafety.core.records import Conversation
from pytest_xsafety.engine.backends import Generation

SCHEMA_VERSION = 1
FILENAME = "responses.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    new_tokens INTEGER NOT NULL,
    truncated INTEGER NOT NULL,
    pins TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def request_key(
    pins: Mapping[str, str], conversation: Conversation, max_new_tokens: int, seed: int
) -> str:
    """sha256 over pins, messages and decoding; identical inputs give identical keys."""
    doc = {
        "schema": SCHEMA_VERSION,
        "pins": dict(pins),
        "messages": [m.as_dict() for m in conversation],
        "decoding": {"greedy": True, "max_new_tokens": max_new_tokens, "seed": seed},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def cache_files() -> list[str]:
    """The database's files in the cache folder (SQLite's WAL mode adds two)."""
    return [FILENAME, FILENAME + "-wal", FILENAME + "-shm"]


def pins_digest(pins: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(pins), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class ResponseCache:
    """Open with :meth:`open`; ``get_many`` and ``put_many`` are the whole interface."""

    path: Path
    conn: sqlite3.Connection
    warning: str | None = None  # set when a corrupt database was moved aside

    @classmethod
    def open(cls, cache_dir: Path) -> ResponseCache:
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / FILENAME
        warning = None
        try:
            conn = _connect(path)
        except sqlite3.DatabaseError as exc:
            if not path.is_file():
                raise  # not a corrupt file (a folder, no permission): nothing to move aside
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            path.replace(aside)
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            warning = (
                f"response cache {path} could not be read ({exc}); moved aside to {aside} "
                "and rebuilt: responses will be generated again"
            )
            conn = _connect(path)
        return cls(path, conn, warning)

    def get_many(self, keys: Iterable[str]) -> dict[str, Generation]:
        keys = list(keys)
        out: dict[str, Generation] = {}
        for i in range(0, len(keys), 500):  # stay under SQLite's variable limit
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT key, text, new_tokens, truncated FROM responses WHERE key IN ({marks})",
                chunk,
            )
            for key, text, new_tokens, truncated in rows:
                out[key] = Generation(str(text), int(new_tokens), bool(truncated))
        return out

    def put_many(self, items: Sequence[tuple[str, Generation]], pins: Mapping[str, str]) -> None:
        """Store one finished batch in one transaction."""
        digest = pins_digest(pins)
        now = time.time()
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                [(k, g.text, g.new_tokens, int(g.truncated), digest, now) for k, g in items],
            )
            self.conn.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (f"pins:{digest}", json.dumps(dict(pins), sort_keys=True)),
            )

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


def read_texts(cache_dir: Path, keys: Iterable[str]) -> dict[str, str]:
    """The cached texts of ``keys``, read only: for showing a response after the run.
    A missing or unreadable database gives nothing (never created, moved or repaired)."""
    path = cache_dir / FILENAME
    wanted = list(dict.fromkeys(keys))
    if not wanted or not path.is_file():
        return {}
    out: dict[str, str] = {}
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error:
        return {}
    try:
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT key, text FROM responses WHERE key IN ({marks})", chunk)
            out.update((str(k), str(t)) for k, t in rows)
    except sqlite3.Error:
        return out
    finally:
        conn.close()
    return out


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60.0)
    try:
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA)
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        row = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if row is None:
            with conn:
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif int(row[0]) != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {row[0]}, expected {SCHEMA_VERSION}")
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn
