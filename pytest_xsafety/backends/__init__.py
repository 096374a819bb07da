"""Backend stage: conversations in, generated text out, with pinned greedy decoding.

Backends are chosen per model entry (``backend = "hf"``, ``"vllm"``, ``"openai"`` or
``"fake"``) or for every model with ``--xsafety-backend``. Each is imported only
when a model needs it, so that importing the plugin never imports torch,
transformers, vllm or openai.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pytest_xsafety.models import ModelSpec, nvidia_gpu_visible
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
    worker: int | None = None  # xdist worker index: gwN uses GPU N mod count


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


# Packages whose versions pin each backend's output (read from metadata, not imported).
BACKEND_PACKAGES: dict[str, tuple[str, ...]] = {
    "hf": ("torch", "transformers"),
    "vllm": ("vllm", "torch"),
    "openai": ("openai",),
    "fake": (),
}


def pins(spec: ModelSpec, runtime: Runtime) -> dict[str, str]:
    """What fixes a model's responses, computed without loading the model.

    This is the response cache's key material and the manifest a warm run shows,
    so it must be cheap: library versions come from package metadata, the device
    is resolved without importing torch on machines with no NVIDIA driver, and
    local weights are fingerprinted by file names, sizes and times.
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {
        "backend": spec.backend,
        "model": spec.pin,
        "hub_id": spec.hub_id,
        "revision": spec.revision,
        "dtype": runtime.dtype or spec.dtype,
        "device": resolve_device(runtime.device) if spec.backend in ("hf", "vllm") else "",
        "system_role": str(spec.system_role),
        "chat_template_override_sha256": chat_template_sha256(spec.chat_template),
        "trust_remote_code": str(spec.trust_remote_code),
        "options": json.dumps(dict(spec.options), sort_keys=True),
    }
    for package in BACKEND_PACKAGES.get(spec.backend, ()):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "absent"
    if spec.backend in ("hf", "vllm"):
        out["weights"] = weights_fingerprint(spec)
    return out


def chat_template_sha256(template: str | Mapping[str, str] | None) -> str:
    """sha256 of the chat template a tokenizer renders with. Some tokenizers (Command
    R+) hold several named templates; chat uses the one named ``default``."""
    if template is not None and not isinstance(template, str):
        template = template.get("default") or json.dumps(dict(template), sort_keys=True)
    return hashlib.sha256((template or "").encode()).hexdigest()


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` or ``cpu``; torch is imported only where a GPU may exist."""
    if device != "auto":
        return device
    if not nvidia_gpu_visible():
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def weights_fingerprint(spec: ModelSpec) -> str:
    """The weights' pin: a GGUF's sha256, a local directory's file listing, or the revision.

    A local directory is fingerprinted by relative path, size and mtime of every
    file (hashing gigabytes on every run would cost more than the gate), plus the
    sha256 of its small JSON/Jinja files, where the chat template lives.
    """
    if spec.path:
        root = Path(spec.path)
        if not root.is_dir():
            return f"local:{spec.path}:missing"
        h = hashlib.sha256()
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            if f.suffix in (".json", ".jinja") and st.st_size < 4_000_000:
                h.update(f.read_bytes())
        return f"local-files-sha256:{h.hexdigest()}"
    if spec.gguf:
        from pytest_xsafety.backends.hf import gguf_digest

        digest = gguf_digest(spec.gguf)
        if digest is not None:
            return f"gguf-sha256:{digest}"
    return f"{spec.hub_id}@{spec.revision}"


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
