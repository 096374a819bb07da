"""A deterministic stand-in model, for tests and demos: no weights, no torch.

Its registry entry's ``options`` decide what it says:

- ``refuse`` (regex): prompts it refuses;
- ``partial`` (regex): prompts it answers with a refusal and then an answer;
- ``relent`` (regex): prompts it refuses at first but answers once a later user
  turn clarifies;
- ``fail`` (regex): a batch holding such a prompt raises, like a crashing backend;
- ``down`` (text): every ``generate`` raises :class:`BackendUnavailable` with this
  cause, like an endpoint nobody listens at;
- ``load_error`` (text): loading raises :class:`BackendError` with this cause, like
  a missing API-key variable;
- ``max_batch`` (int): a larger batch raises MemoryError, like a GPU out of memory;
- ``delay`` (seconds): a pause per batch, so tests can interrupt a run mid-way (spread
  over ten reported decoding steps, so tests can watch progress inside a batch);
- ``log`` (path): a file that gets one line per generated conversation, so tests
  can count how often a prompt was generated.

Everything else gets a compliant answer that depends only on the prompt.

``refusal_text``, ``partial_text`` and ``answer_text`` replace what it says in
each of those cases (``{ref}`` is replaced by a hash of the prompt). With them
a fake can stand in for a judge model: ``refuse = "sorry, but"`` and
``refusal_text = "Verdict: 2_full_refusal"`` grade the tested fake's refusals.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Mapping, Sequence

from pytest_xsafety.core.records import Conversation, Generation
from pytest_xsafety.engine.backends.base import BackendError, BackendUnavailable, StepFn
from pytest_xsafety.setup.models import ModelSpec

REFUSAL = "I'm sorry, but I can't help with that request."
PARTIAL = "I can't help with the harmful part of this, but in general terms: {ref}."
ANSWER = "Sure. Here is a clear, helpful answer, reference {ref}: first, second, third."


class FakeBackend:
    on_step: StepFn | None = None

    def __init__(self, spec: ModelSpec) -> None:
        if "load_error" in spec.options:
            raise BackendError(str(spec.options["load_error"]))
        self.spec = spec
        self.down = spec.options.get("down")
        self.refuse = re.compile(spec.options["refuse"]) if "refuse" in spec.options else None
        self.partial = re.compile(spec.options["partial"]) if "partial" in spec.options else None
        self.relent = re.compile(spec.options["relent"]) if "relent" in spec.options else None
        self.fail = re.compile(spec.options["fail"]) if "fail" in spec.options else None
        self.max_batch = int(spec.options.get("max_batch", 0))
        self.delay = float(spec.options.get("delay", 0))
        self.log = spec.options.get("log")
        self.texts = {
            "refusal": spec.options.get("refusal_text", REFUSAL),
            "partial": spec.options.get("partial_text", PARTIAL),
            "answer": spec.options.get("answer_text", ANSWER),
        }

    def describe(self) -> Mapping[str, str]:
        return {"backend": "fake", "device": "none", "dtype": "none"}

    def _reply(self, conversation: Conversation) -> str:
        prompt = conversation[-1].content
        ref = hashlib.sha256(prompt.encode()).hexdigest()[:8]
        if self.refuse and self.refuse.search(prompt):
            kind = "refusal"
        elif self.relent and self.relent.search(prompt):
            clarified = sum(m.role == "user" for m in conversation) > 1
            kind = "answer" if clarified else "refusal"
        elif self.partial and self.partial.search(prompt):
            kind = "partial"
        else:
            kind = "answer"
        return self.texts[kind].replace("{ref}", ref)

    def generate(
        self, conversations: Sequence[Conversation], max_new_tokens: int
    ) -> list[Generation]:
        if self.down is not None:
            raise BackendUnavailable(str(self.down))
        if self.max_batch and len(conversations) > self.max_batch:
            raise MemoryError(f"out of memory (fake: batch {len(conversations)} > max_batch)")
        if self.fail and any(self.fail.search(c[-1].content) for c in conversations):
            raise RuntimeError("injected fault (fake backend 'fail' option)")
        if self.delay:
            for step in range(1, 11):
                time.sleep(self.delay / 10)
                if self.on_step is not None:
                    self.on_step(max(1, max_new_tokens * step // 10), step * len(conversations))
        out = []
        for conv in conversations:
            words = self._reply(conv).split(" ")
            text = " ".join(words[:max_new_tokens])
            out.append(
                Generation(text, min(len(words), max_new_tokens), len(words) > max_new_tokens)
            )
        if self.log:
            # One O_APPEND write per batch: safe with several xdist workers.
            # One line per conversation, even for a judge's multi-line prompt.
            lines = "".join(
                f"{self.spec.name}\t{c[-1].content}".replace("\n", "\\n") + "\n"
                for c in conversations
            )
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, lines.encode())
            finally:
                os.close(fd)
        return out

    def close(self) -> None:
        pass
