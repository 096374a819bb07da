"""Generation stage: a fixed batch plan per model x strategy group, run on a backend.

Greedy output on a GPU can depend on batch size, padding and batch
composition, so batches are planned over the whole group in a fixed order
(rendered length, then prompt id) whatever pytest selected; only batches that
hold a selected case are run, and each is run whole. A ``-k`` subset or an
xdist split therefore sees the same numerics as a full run.

A :class:`~pytest_xsafety.engine.backends.Streaming` backend (an HTTP API) is the
exception: its requests are independent, so each answer is stored and counted as
it arrives, and a request that fails fails alone, never retried in halves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass

from pytest_xsafety.core.records import Conversation
from pytest_xsafety.core.secrets import scrub
from pytest_xsafety.engine.backends import (
    Backend,
    BackendUnavailable,
    Generation,
    StepReporting,
    Streaming,
)
from pytest_xsafety.engine.progress import Say, duration


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
    """Where a group's generation stands: ``done`` of ``total`` requests, and, inside
    the running batch (number ``batch`` of ``batches``), the decoding ``step`` of at
    most ``steps`` when the backend reports its steps."""

    group: str
    done: int
    total: int
    tokens: int
    seconds: float
    batch: int = 0
    batches: int = 0
    step: int = 0
    steps: int = 0
    batch_seconds: float = 0.0  # time spent in the running batch

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if self.done >= self.total:
            return None
        if self.step and self.steps:
            # Greedy decoding stops at EOS or at ``steps``: an upper bound per batch.
            per_step = self.batch_seconds / self.step
            finished = self.batch - 1
            earlier = self.seconds - self.batch_seconds
            per_batch = earlier / finished if finished else per_step * self.steps
            left = (self.steps - self.step) * per_step
            return left + (self.batches - self.batch) * per_batch
        if not self.done:
            return None
        return self.seconds / self.done * (self.total - self.done)

    def line(self) -> str:
        rate = f"{self.tokens_per_second:.0f} tok/s"
        if self.done >= self.total:
            return (
                f"xsafety: generated {self.group}: {self.done}/{self.total} "
                f"in {duration(self.seconds)} ({rate})"
            )
        where = ""
        if self.step and self.steps:
            where = f", batch {self.batch}/{self.batches} at token {self.step}/{self.steps}"
        eta = self.eta_seconds
        tail = f", ~{duration(eta)} left" if eta is not None else ""
        return (
            f"xsafety: generating {self.group}: {self.done}/{self.total}{where} "
            f"({rate}{tail}, {duration(self.seconds)} so far)"
        )


ProgressFn = Callable[[Progress], None]


def plan_batches(requests: Sequence[Request], batch_size: int) -> list[tuple[Request, ...]]:
    """Sort by rendered length (less padding) then prompt id, and cut into batches."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    ordered = sorted(requests, key=lambda r: (r.length, r.order, r.key))
    return [tuple(ordered[i : i + batch_size]) for i in range(0, len(ordered), batch_size)]


@dataclass(frozen=True)
class Failure:
    """A request the backend could not answer, even alone: the case errors with this cause."""

    cause: str


def select_batches(
    plan: Sequence[Sequence[Request]], needed: set[str], done: Container[str]
) -> list[tuple[Request, ...]]:
    """Planned batches that hold a needed request, less the requests already ``done``.

    A batch is run whole (not only its needed requests) so that a ``-k`` subset
    sees the same batch composition as a full run.
    """
    out = []
    for batch in plan:
        if any(r.key in needed for r in batch):
            rest = tuple(r for r in batch if r.key not in done)
            if rest:
                out.append(rest)
    return out


StoreFn = Callable[[Sequence[tuple[Request, Generation]]], None]


def run_batches(
    backend: Callable[[], Backend],
    group: str,
    batches: Sequence[Sequence[Request]],
    *,
    max_new_tokens: int,
    store: StoreFn | None = None,
    progress: ProgressFn | None = None,
    say: Say | None = None,
) -> dict[str, Generation | Failure]:
    """Generate each batch; ``backend`` is called (to load the model) only if there is work.

    A batch that raises (out of memory, a backend error) is split in halves and
    retried, down to single requests; a request that still fails becomes a
    :class:`Failure` and the rest of the run goes on. Each out-of-memory halving is
    told to ``say``: it changes the batch plan, and with it greedy text in bf16.
    Each finished batch is handed to ``store`` at once, so an interruption loses at
    most the batch in flight (a streaming backend's answers are handed over one by
    one: it loses none).
    """
    out: dict[str, Generation | Failure] = {}
    if not any(batches):
        return out
    try:
        model = backend()
    except Exception as exc:  # the model did not load: every request fails with the cause
        return failures(batches, exc)
    run = _Run(model, group, batches, max_new_tokens, store, progress, out)
    run.say = say
    if isinstance(model, StepReporting):
        # Inside one long generate() call: the backend reports each decoding step.
        model.on_step = run.report
    try:
        for run.number, batch in enumerate(batches, 1):
            run.batch_start = time.perf_counter()
            try:
                run.attempt(batch)
            except BackendUnavailable as exc:
                for request in (r for b in batches[run.number - 1 :] for r in b):
                    out.setdefault(request.key, Failure(failure_cause(exc)))
                break
    finally:
        if isinstance(model, StepReporting):
            model.on_step = None
    return out


class _Run:
    """One :func:`run_batches` call's state: what is done, where progress stands, and
    the batch size that fits."""

    def __init__(
        self,
        model: Backend,
        group: str,
        batches: Sequence[Sequence[Request]],
        max_new_tokens: int,
        store: StoreFn | None,
        progress: ProgressFn | None,
        out: dict[str, Generation | Failure],
    ) -> None:
        self.model, self.group, self.batches = model, group, batches
        self.max_new_tokens, self.store, self.progress, self.out = (
            max_new_tokens, store, progress, out
        )  # fmt: skip
        self.total = sum(len(b) for b in batches)
        self.done = self.tokens = self.number = 0  # number: the running batch, from 1
        self.start = self.batch_start = time.perf_counter()
        # After an out-of-memory error, later batches larger than what then ran are
        # split in halves up front, as the failing one was: the same composition,
        # without paying for the same error on every batch.
        self.fits: int | None = None
        self.say: Say | None = None  # where each out-of-memory halving is told

    def report(self, step: int = 0, batch_tokens: int = 0) -> None:
        """Progress after a batch, or at decoding ``step`` inside the running one."""
        if self.progress:
            now = time.perf_counter()
            self.progress(
                Progress(self.group, self.done, self.total, self.tokens + batch_tokens,
                         now - self.start, self.number, len(self.batches), step,
                         self.max_new_tokens if step else 0, now - self.batch_start)
            )  # fmt: skip

    def attempt(self, batch: Sequence[Request]) -> None:
        if isinstance(self.model, Streaming):
            self.stream(self.model, batch)
            return
        if self.fits is not None and len(batch) > self.fits:
            self.halves(batch)
            return
        try:
            results = _generate(self.model, batch, self.max_new_tokens)
        except BackendUnavailable:
            raise  # no batch size helps: run_batches fails the rest at once
        except Exception as exc:  # any backend failure: retry smaller, never drop silently
            if len(batch) > 1:
                if _out_of_memory(exc):
                    half = (len(batch) + 1) // 2
                    self.fits = half if self.fits is None else min(self.fits, half)
                    if self.say is not None:
                        self.say(
                            f"xsafety: {self.group}: out of memory on a batch of {len(batch)} "
                            f"prompts: retried in halves of {half}; the group's later batches "
                            f"at most {self.fits}"
                        )
                self.halves(batch)
                return
            self.fail(batch[0], exc)
            return
        self.finish(list(zip(batch, results, strict=True)))

    def stream(self, model: Streaming, batch: Sequence[Request]) -> None:
        """Each answer stored and counted as it arrives; a failed request fails alone.
        When the server is unreachable, raises after every request has its outcome."""
        down: BackendUnavailable | None = None
        for i, got in model.stream([r.conversation for r in batch], self.max_new_tokens):
            if isinstance(got, Generation):
                self.finish([(batch[i], got)])
                continue
            if isinstance(got, BackendUnavailable):
                down = got
            self.fail(batch[i], got)
        for request in batch:
            if request.key not in self.out:  # a backend that skipped one: never silent
                self.fail(request, RuntimeError("the backend returned no answer"))
        if down is not None:
            raise down

    def fail(self, request: Request, exc: BaseException) -> None:
        self.out[request.key] = Failure(failure_cause(exc))
        self.done += 1
        self.report()

    def halves(self, batch: Sequence[Request]) -> None:
        half = (len(batch) + 1) // 2
        self.attempt(batch[:half])
        self.attempt(batch[half:])

    def finish(self, pairs: list[tuple[Request, Generation]]) -> None:
        if self.store is not None:
            self.store(pairs)
        for request, result in pairs:
            self.out[request.key] = result
            self.tokens += result.new_tokens
        self.done += len(pairs)
        self.report()


def _generate(model: Backend, batch: Sequence[Request], max_new_tokens: int) -> list[Generation]:
    results = model.generate([r.conversation for r in batch], max_new_tokens)
    if len(results) != len(batch):
        raise RuntimeError(f"backend returned {len(results)} responses for a batch of {len(batch)}")
    return results


def failures(
    batches: Sequence[Sequence[Request]], exc: BaseException
) -> dict[str, Generation | Failure]:
    """Every request of ``batches`` failed with one cause (a model that did not load)."""
    return {r.key: Failure(failure_cause(exc)) for b in batches for r in b}


def failure_cause(exc: BaseException) -> str:
    """``Type: message``: how an error is named as a case's cause, on one line and with
    no secret (it reaches every report)."""
    return scrub(" ".join(f"{type(exc).__name__}: {exc}".split()))


def _out_of_memory(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError (not imported here) or a host MemoryError."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
