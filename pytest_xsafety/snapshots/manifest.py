"""Each model x strategy directory's ``_manifest.json``: what pins the responses
(backend, weights, dtype, device, library versions, decoding, strategy
fingerprint, classifier), so a changed response can be traced to a changed pin.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_xsafety.core.secrets import scrub

SCHEMA = 1
MANIFEST = "_manifest.json"

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


def update_differences(stored: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """``backend fake (this run: hf)``: what makes a recorded group another run's."""
    differs = []
    for section, key, what in (("pins", "backend", "backend"), ("suite", "sha256", "suite")):
        old, new = (_section(doc, section).get(key) for doc in (stored or {}, current))
        if old and new and old != new:
            differs.append(f"{what} {_short(str(old))} (this run: {_short(str(new))})")
    return differs


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
    return scrub(json.dumps(data, indent=2, ensure_ascii=False)) + "\n"


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
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
