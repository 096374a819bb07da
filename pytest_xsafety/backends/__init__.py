"""Backend stage: conversations in, generated text out, with pinned greedy decoding.

Backends are chosen per model entry (``backend = "hf"``, ``"vllm"``, ``"openai"`` or
``"fake"``) or for every model with ``--xsafety-backend``. Each is imported only
when a model needs it, so that importing the plugin never imports torch,
transformers, vllm or openai.
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
    if spec.backend == "vllm":
        from pytest_xsafety.backends.vllm import VLLMBackend

        return VLLMBackend(spec, runtime)
    if spec.backend == "openai":
        from pytest_xsafety.backends.openai import OpenAIBackend

        return OpenAIBackend(spec)
    raise BackendError(f"model {spec.name!r}: unknown backend {spec.backend!r}")
