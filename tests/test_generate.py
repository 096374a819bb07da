"""Generation stage: the batch plan does not depend on what was selected."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pytest_xsafety.core.records import ChatMessage, Conversation
from pytest_xsafety.engine.backends import Backend, Generation, StepFn
from pytest_xsafety.engine.batching import (
    Failure,
    Progress,
    Request,
    plan_batches,
    run_batches,
    select_batches,
)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def describe(self) -> Mapping[str, str]:
        return {}

    def generate(
        self, conversations: Sequence[Conversation], max_new_tokens: int
    ) -> list[Generation]:
        self.batches.append([c[-1].content for c in conversations])
        return [Generation(c[-1].content.upper(), 3, False) for c in conversations]

    def close(self) -> None:
        pass


def _requests(n: int) -> list[Request]:
    # Lengths cycle so that length order differs from id order.
    return [
        Request(f"k{i}", (ChatMessage("user", "x" * (1 + (i * 7) % 5) + f"-{i}"),), (0, i))
        for i in range(n)
    ]


def test_plan_sorts_by_length_then_id_and_is_order_independent() -> None:
    reqs = _requests(10)
    plan = plan_batches(reqs, 4)
    assert [len(b) for b in plan] == [4, 4, 2]
    flat = [r for b in plan for r in b]
    assert [r.length for r in flat] == sorted(r.length for r in flat)
    assert plan == plan_batches(list(reversed(reqs)), 4)


def test_only_batches_with_needed_cases_run_whole() -> None:
    reqs = _requests(10)
    plan = plan_batches(reqs, 4)
    wanted = plan[1][2].key
    backend = Recorder()
    seen: list[Progress] = []
    batches = select_batches(plan, {wanted}, ())
    out = run_batches(lambda: backend, "m/s", batches, max_new_tokens=8, progress=seen.append)
    assert backend.batches == [[r.conversation[-1].content for r in plan[1]]]
    assert set(out) == {r.key for r in plan[1]}
    assert seen[-1].done == seen[-1].total == 4
    # Nothing left to do when everything needed is already done: the backend is not
    # even loaded.
    assert select_batches(plan, {wanted}, out) == []
    assert run_batches(_no_backend, "m/s", [], max_new_tokens=8) == {}


def _no_backend() -> Backend:
    raise AssertionError("the backend must not be loaded when there is nothing to generate")


def test_finished_batches_are_stored_one_by_one() -> None:
    reqs = _requests(10)
    stored: list[list[str]] = []
    run_batches(
        Recorder,
        "m/s",
        plan_batches(reqs, 4),
        max_new_tokens=8,
        store=lambda pairs: stored.append([r.key for r, _ in pairs]),
    )
    assert [len(b) for b in stored] == [4, 4, 2]


class Flaky(Recorder):
    """Fails any batch holding a poisoned prompt, or larger than ``limit`` (like OOM)."""

    def __init__(self, poison: str, limit: int) -> None:
        super().__init__()
        self.poison = poison
        self.limit = limit

    def generate(
        self, conversations: Sequence[Conversation], max_new_tokens: int
    ) -> list[Generation]:
        if len(conversations) > self.limit:
            raise MemoryError("CUDA out of memory (simulated)")
        if any(c[-1].content == self.poison for c in conversations):
            raise ValueError("backend exploded")
        return super().generate(conversations, max_new_tokens)


def test_failing_batches_are_split_and_only_the_culprit_fails() -> None:
    reqs = _requests(8)
    poison = reqs[3]
    backend = Flaky(poison.conversation[-1].content, limit=2)
    out = run_batches(lambda: backend, "m/s", plan_batches(reqs, 8), max_new_tokens=8)
    assert out[poison.key] == Failure("ValueError: backend exploded")
    good = [r for r in reqs if r.key != poison.key]
    assert all(isinstance(out[r.key], Generation) for r in good)
    assert max(len(b) for b in backend.batches) <= 2


def test_progress_line_has_rate_and_eta() -> None:
    p = Progress("m/s", 4, 10, 200, 2.0)
    assert p.tokens_per_second == 100
    assert p.line() == "xsafety: generating m/s: 4/10 (100 tok/s, ~3s left, 2s so far)"
    # Inside the second of three batches, 20 of at most 100 steps in 4 s: the first batch
    # took 16 s, so ~16 s (80 steps) for this one and ~16 s for the last.
    inside = Progress("m/s", 4, 10, 600, 20.0, batch=2, batches=3, step=20, steps=100,
                      batch_seconds=4.0)  # fmt: skip
    assert inside.eta_seconds == pytest.approx(32.0)
    assert inside.line() == (
        "xsafety: generating m/s: 4/10, batch 2/3 at token 20/100 (30 tok/s, ~32s left, 20s so far)"
    )
    assert Progress("m/s", 10, 10, 500, 125.0).line() == (
        "xsafety: generated m/s: 10/10 in 2m05s (4 tok/s)"
    )


class Stepper(Recorder):
    """Reports three decoding steps per batch, as the hf backend does."""

    on_step: StepFn | None = None

    def generate(
        self, conversations: Sequence[Conversation], max_new_tokens: int
    ) -> list[Generation]:
        for step in (1, 2, 3):
            assert self.on_step is not None
            self.on_step(step, step * len(conversations))
        return super().generate(conversations, max_new_tokens)


def test_progress_inside_a_batch_from_a_step_reporting_backend() -> None:
    seen: list[Progress] = []
    backend = Stepper()
    run_batches(lambda: backend, "m/s", plan_batches(_requests(6), 4), max_new_tokens=8,
                progress=seen.append)  # fmt: skip
    steps = [(p.batch, p.step, p.done) for p in seen]
    assert steps == [(1, 1, 0), (1, 2, 0), (1, 3, 0), (1, 0, 4), (2, 1, 4), (2, 2, 4),
                     (2, 3, 4), (2, 0, 6)]  # fmt: skip
    assert seen[2].tokens == 12
    assert seen[2].steps == 8
    assert backend.on_step is None  # unhooked afterwards


class _Cuda:
    def __init__(self, count: int) -> None:
        self.count = count

    def is_available(self) -> bool:
        return self.count > 0

    def device_count(self) -> int:
        return self.count


class _Torch:
    def __init__(self, count: int) -> None:
        self.cuda = _Cuda(count)


def test_each_xdist_worker_takes_its_own_gpu(tmp_path: Path) -> None:
    from pytest_xsafety.engine.backends import Runtime
    from pytest_xsafety.engine.backends.hf import pick_device

    def pick(count: int, device: str, worker: int | None) -> str:
        return pick_device(_Torch(count), Runtime(tmp_path, device=device, worker=worker))

    assert [pick(4, "auto", w) for w in range(5)] == [
        "cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0",
    ]  # fmt: skip
    assert pick(1, "auto", 3) == "cuda"
    assert pick(0, "auto", 1) == "cpu"
    assert pick(4, "cuda:2", 1) == "cuda:2"  # an explicit device wins
    assert pick(4, "auto", None) == "cuda"


class Cuda(Recorder):
    """Runs out of memory, like torch.cuda.OutOfMemoryError, on batches above ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.tried: list[int] = []

    def generate(
        self, conversations: Sequence[Conversation], max_new_tokens: int
    ) -> list[Generation]:
        self.tried.append(len(conversations))
        if len(conversations) > self.limit:
            raise type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory")
        return super().generate(conversations, max_new_tokens)


def test_after_out_of_memory_later_batches_are_halved_up_front() -> None:
    reqs = _requests(24)
    plan = plan_batches(reqs, 8)
    backend = Cuda(limit=2)
    out = run_batches(lambda: backend, "m/s", plan, max_new_tokens=8)
    assert all(isinstance(g, Generation) for g in out.values())
    # Fails at 8, then at 4; from then on every batch starts at 2, in the same halves.
    assert backend.tried == [8, 4, 2, 2, 2, 2] + [2, 2, 2, 2] * 2
    assert backend.batches == [[r.conversation[-1].content for r in b[i : i + 2]]
                               for b in plan for i in range(0, 8, 2)]  # fmt: skip


def test_each_out_of_memory_halving_is_told() -> None:
    said: list[str] = []
    run_batches(lambda: Cuda(limit=2), "m/s", plan_batches(_requests(12), 8), max_new_tokens=8,
                say=said.append)  # fmt: skip
    assert said == [
        "xsafety: m/s: out of memory on a batch of 8 prompts: retried in halves of 4; "
        "the group's later batches at most 4",
        "xsafety: m/s: out of memory on a batch of 4 prompts: retried in halves of 2; "
        "the group's later batches at most 2",
    ]  # the second batch (4) is halved up front: no error, nothing to tell


def test_other_failures_do_not_shrink_later_batches() -> None:
    reqs = _requests(16)
    poison = plan_batches(reqs, 8)[0][0]
    backend = Flaky(poison.conversation[-1].content, limit=8)
    run_batches(lambda: backend, "m/s", plan_batches(reqs, 8), max_new_tokens=8)
    assert len(backend.batches[-1]) == 8  # the second batch ran whole
