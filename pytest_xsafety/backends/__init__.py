"""Backend stage: conversations in, generated text out, with pinned greedy decoding.

Backends are chosen per model entry (``backend = "hf"`` or ``"fake"``). Each is
imported only when a model needs it, so that importing the plugin never imports
torch or transformers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pytest_xsafety.models import ModelSpec
from pytest_xsafety.records import Conversation


class BackendError(RuntimeError):
    """A model that cannot be loaded or run; the message says what to install or fix."""


@dataclass(frozen=True)
class Runtime:
    """Process-level settings that are not part of a model entry."""

    cache_dir: Path
    device: str = "auto"
    dtype: str | None = None  # overrides the model entry's dtype
    threads: int | None = None  # torch threads; None leaves torch's default
    seed: int = 0


@dataclass(frozen=True)
class Generation:
    """One response. ``truncated``: generation stopped at the token limit, not at EOS."""

    text: str
    new_tokens: int
    truncated: bool


class Backend(Protocol):
    def describe(self) -> Mapping[str, str]:
        """What pins this backend's outputs (device, dtype, library versions, weights)."""
        ...

    def generate(
        self, conversations: Sequence[Conversation], max_new_tokens: int
    ) -> list[Generation]: ...

    def close(self) -> None: ...


def load_backend(spec: ModelSpec, runtime: Runtime) -> Backend:
    """Instantiate the backend a model entry names; heavy imports happen here."""
    if spec.backend == "fake":
        from pytest_xsafety.backends.fake import FakeBackend

        return FakeBackend(spec)
    if spec.backend == "hf":
        from pytest_xsafety.backends.hf import HFBackend

        return HFBackend(spec, runtime)
    raise BackendError(f"model {spec.name!r}: unknown backend {spec.backend!r}")


class LazyChat:
    """A ``generate(conversations) -> texts`` function over one model entry, for
    a judge: the backend loads on the first call (never at configure time) and
    runs in batches of ``batch_size``, each reply at most ``max_new_tokens``."""

    def __init__(
        self, spec: ModelSpec, runtime: Runtime, *, batch_size: int, max_new_tokens: int
    ) -> None:
        self.spec = spec
        self.runtime = runtime
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self._backend: Backend | None = None

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def __call__(self, conversations: Sequence[Conversation]) -> list[str]:
        if self._backend is None:
            self._backend = load_backend(self.spec, self.runtime)
        out: list[str] = []
        for i in range(0, len(conversations), self.batch_size):
            batch = conversations[i : i + self.batch_size]
            out.extend(g.text for g in self._backend.generate(batch, self.max_new_tokens))
        return out

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
