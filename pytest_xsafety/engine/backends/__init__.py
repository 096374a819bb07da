"""Backend stage: conversations in, generated text out, with pinned greedy decoding.

Backends are chosen per model entry (``backend = "hf"``, ``"vllm"``, ``"openai"`` or
``"fake"``) or for every model with ``--xsafety-backend``. Each is imported only
when a model needs it, so that importing the plugin never imports torch,
transformers, vllm or openai.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_xsafety.core.records import Conversation, Generation
from pytest_xsafety.engine.backends.base import (
    Backend,
    BackendError,
    BackendUnavailable,
    MemoryReporting,
    PeakMemory,
    Runtime,
    StepFn,
    StepReporting,
    Streaming,
    Warns,
)
from pytest_xsafety.engine.backends.weights import (
    conversion_target,
    pins,
    resolve_device,
    weights_fingerprint,
)
from pytest_xsafety.setup.models import ModelSpec

__all__ = [
    "Backend", "BackendError", "BackendUnavailable", "Generation", "LazyChat", "MemoryReporting",
    "PeakMemory", "Runtime", "StepFn", "StepReporting", "Streaming", "Warns", "load_backend",
    "load_notice", "pins",
    "resolve_device", "weights_fingerprint",
]  # fmt: skip


def load_notice(spec: ModelSpec, runtime: Runtime) -> str | None:
    """What loading ``spec`` will do and roughly how long it takes, said before it
    starts (a first load can be minutes of silence); None when nothing loads."""
    where = f"{resolve_device(runtime.device)}"
    if runtime.threads:
        where += f", {runtime.threads} torch thread{'s' if runtime.threads > 1 else ''}"
    if spec.backend == "hf":
        if spec.path:
            return f"loading {spec.name} from {spec.path} ({where})"
        if spec.gguf:
            target = conversion_target(spec.gguf, runtime.cache_dir)
            if target is not None and not (target / "config.json").is_file():
                return (
                    f"loading {spec.name} ({where}): first use converts the "
                    f"{spec.gguf.package} GGUF to safetensors in {target.parent}/, once "
                    "(about 40 s on 2 CPU cores; later loads take about 2 s)"
                )
            if target is not None:
                return f"loading {spec.name} from {target} ({where}, about 2 s)"
        return (
            f"loading {spec.name}: {spec.hub_id}@{spec.revision[:12]} from the Hugging Face "
            f"cache or Hub ({where}; a first download of large weights takes minutes)"
        )
    if spec.backend == "vllm":
        return (
            f"loading {spec.name} with vLLM ({spec.hub_id or spec.path}): weights and engine "
            "start-up take a minute or more"
        )
    return None


def load_backend(spec: ModelSpec, runtime: Runtime) -> Backend:
    """Instantiate the backend a model entry names; heavy imports happen here."""
    if spec.backend == "fake":
        from pytest_xsafety.engine.backends.fake import FakeBackend

        return FakeBackend(spec)
    if spec.backend == "hf":
        from pytest_xsafety.engine.backends.hf import HFBackend

        return HFBackend(spec, runtime)
    if spec.backend == "vllm":
        from pytest_xsafety.engine.backends.vllm import VLLMBackend

        return VLLMBackend(spec, runtime)
    if spec.backend == "openai":
        from pytest_xsafety.engine.backends.openai import OpenAIBackend

        return OpenAIBackend(spec)
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
