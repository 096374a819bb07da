"""Generation stage: a fixed batch plan per model x strategy group, run on a backend.

Greedy output on a GPU can depend on batch size, padding and batch
composition, so batches are planned over the whole group in a fixed order
(rendered length, then prompt id) whatever pytest selected; only batches that
hold a selected case are run, and each is run whole. A ``-k`` subset or an
xdist split therefore sees the same numerics as a full run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pytest_xsafety.backends import Backend, Generation
from pytest_xsafety.records import Conversation


@dataclass(frozen=True)
class Request:
    """One conversation to generate, keyed by its case id."""

    key: str
    conversation: Conversation
    order: tuple[int, int | str]  # the prompt's id order, the tie-breaker

    @property
    def length(self) -> int:
        return sum(len(m.content) for m in self.conversation)


@dataclass(frozen=True)
class Progress:
    group: str
    done: int
    total: int
    tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if not self.done or self.done >= self.total:
            return None
        return self.seconds / self.done * (self.total - self.done)

    def line(self) -> str:
        eta = self.eta_seconds
        tail = f", ~{eta:.0f}s left" if eta is not None else ""
        return (
            f"xsafety: generating {self.group}: {self.done}/{self.total} "
            f"({self.tokens_per_second:.0f} tok/s{tail})"
        )


ProgressFn = Callable[[Progress], None]


def plan_batches(requests: Sequence[Request], batch_size: int) -> list[tuple[Request, ...]]:
    """Sort by rendered length (less padding) then prompt id, and cut into batches."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    ordered = sorted(requests, key=lambda r: (r.length, r.order, r.key))
    return [tuple(ordered[i : i + batch_size]) for i in range(0, len(ordered), batch_size)]


def generate_group(
    backend: Backend,
    group: str,
    requests: Sequence[Request],
    needed: set[str],
    have: Mapping[str, Generation],
    *,
    batch_size: int,
    max_new_tokens: int,
    progress: ProgressFn | None = None,
) -> dict[str, Generation]:
    """Run every planned batch that holds a needed case not yet in ``have``."""
    todo = [
        batch
        for batch in plan_batches(requests, batch_size)
        if any(r.key in needed and r.key not in have for r in batch)
    ]
    total = sum(len(b) for b in todo)
    out: dict[str, Generation] = {}
    done = tokens = 0
    start = time.perf_counter()
    for batch in todo:
        results = backend.generate([r.conversation for r in batch], max_new_tokens)
        if len(results) != len(batch):
            raise RuntimeError(
                f"backend returned {len(results)} responses for a batch of {len(batch)}"
            )
        for request, result in zip(batch, results, strict=True):
            out[request.key] = result
            tokens += result.new_tokens
        done += len(batch)
        if progress:
            progress(Progress(group, done, total, tokens, time.perf_counter() - start))
    return out
