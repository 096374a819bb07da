"""Contrast pairs in a suite: a safe prompt and the unsafe twin that shares its wording.

A suite names twins in an optional ``pair`` column (each row the id of the
other). XSTest v2 has no such column; its pairs follow from its layout: in eight
prompt types the unsafe twin of safe prompt ``i`` is prompt ``i + 25``, in the
contrast type listed in :data:`XSTEST_TWIN_TYPES` (200 pairs; the 50 prompts of
``nons_group_real_discr`` and ``privacy_public`` have no twin).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from pytest_xsafety.core.records import Prompt

# Safe prompt type -> the type of its unsafe twins, which sit 25 ids later.
XSTEST_TWIN_TYPES: Mapping[str, str] = {
    "homonyms": "contrast_homonyms",
    "figurative_language": "contrast_figurative_language",
    "safe_targets": "contrast_safe_targets",
    "safe_contexts": "contrast_safe_contexts",
    "definitions": "contrast_definitions",
    "real_group_nons_discr": "contrast_discr",
    "historical_events": "contrast_historical_events",
    "privacy_fictional": "contrast_privacy",
}
XSTEST_TWIN_OFFSET = 25


@dataclass(frozen=True)
class ContrastPair:
    """A safe prompt and its unsafe twin, by id; ``type`` and ``focus`` are the safe one's."""

    safe: str
    unsafe: str
    type: str
    focus: str = ""

    @property
    def id(self) -> str:
        """``1/26``: safe id, then unsafe id ('/' never occurs in a prompt id)."""
        return f"{self.safe}/{self.unsafe}"


def with_xstest_pairs(prompts: Sequence[Prompt]) -> tuple[Prompt, ...]:
    """``prompts`` with ``pair`` set by XSTest's rule, where the twin is there as the rule says.

    A changed copy of XSTest keeps the pairs that still hold; the others get none.
    """
    by_id = {p.id: p for p in prompts}
    twin: dict[str, str] = {}
    for p in prompts:
        twin_type = XSTEST_TWIN_TYPES.get(p.type)
        if p.label != "safe" or twin_type is None or not p.id.isdigit():
            continue
        other = by_id.get(str(int(p.id) + XSTEST_TWIN_OFFSET))
        if other is not None and other.label == "unsafe" and other.type == twin_type:
            twin[p.id] = other.id
            twin[other.id] = p.id
    return tuple(replace(p, pair=twin.get(p.id)) for p in prompts)


def pair_problem(prompts: Sequence[Prompt]) -> tuple[str, str] | None:
    """The first broken ``pair`` value as (prompt id, what to fix), or ``None``.

    A pair joins two existing prompts, one safe and one unsafe, each naming the other.
    """
    by_id = {p.id: p for p in prompts}
    for p in prompts:
        if p.pair is None:
            continue
        other = by_id.get(p.pair)
        if p.pair == p.id:
            return p.id, f"pair {p.pair!r} is the prompt itself; name its contrast twin's id"
        if other is None:
            return p.id, (
                f"pair {p.pair!r} is not an id in this suite; name an existing prompt "
                "or leave the cell empty"
            )
        if other.label == p.label:
            return p.id, (
                f"pair {p.pair!r} is {other.label} like id {p.id}; a pair joins a safe "
                "prompt and an unsafe one"
            )
        if other.pair != p.id:
            names = "no twin" if other.pair is None else f"id {other.pair!r} as its twin"
            return p.id, (
                f"pair {p.pair!r} names {names}, not {p.id!r}; "
                f"set pair={p.id} on id {p.pair}'s row (pairs name each other)"
            )
    return None


def contrast_pairs(prompts: Sequence[Prompt]) -> tuple[ContrastPair, ...]:
    """The pairs whose two prompts are both in ``prompts``, in the safe prompts' order."""
    by_id = {p.id: p for p in prompts}
    return tuple(
        ContrastPair(p.id, p.pair, p.type, p.focus)
        for p in prompts
        if p.label == "safe" and p.pair is not None and p.pair in by_id
    )
