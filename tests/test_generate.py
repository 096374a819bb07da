"""Generation stage: the batch plan does not depend on what was selected."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pytest_xsafety.backends import Generation
from pytest_xsafety.generate import Progress, Request, generate_group, plan_batches
from pytest_xsafety.records import ChatMessage, Conversation


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
    out = generate_group(
        backend, "m/s", reqs, {wanted}, {}, batch_size=4, max_new_tokens=8, progress=seen.append
    )
    assert backend.batches == [[r.conversation[-1].content for r in plan[1]]]
    assert set(out) == {r.key for r in plan[1]}
    assert seen[-1].done == seen[-1].total == 4
    # Nothing left to do when everything needed is already there.
    again = generate_group(backend, "m/s", reqs, {wanted}, out, batch_size=4, max_new_tokens=8)
    assert again == {}
    assert len(backend.batches) == 1


def test_progress_line_has_rate_and_eta() -> None:
    p = Progress("m/s", 4, 10, 200, 2.0)
    assert p.tokens_per_second == 100
    assert p.line() == "xsafety: generating m/s: 4/10 (100 tok/s, ~3s left)"
