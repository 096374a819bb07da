"""Backend stage: conversations in, generated text out, with pinned greedy decoding.

Backends are chosen per model entry (``backend = "hf"``, ``"vllm"``, ``"openai"`` or
``"fake"``) or for every model with ``--xsafety-backend``. Each is imported only
when a model needs it, so that importing the plugin never imports torch,
transformers, vllm or openai.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pytest_xsafety.models import ModelSpec, public_options
from pytest_xsafety.records import Conversation


class BackendError(RuntimeError):
    """A model that cannot be loaded or run; the message says what to install or fix."""


class BackendUnavailable(BackendError):
    """The backend can answer no request at all (an endpoint nobody listens at):
    retrying smaller batches would only repeat the wait, so the group's remaining
    requests fail at once with this cause."""


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


StepFn = Callable[[int, int], None]  # (decoding step, tokens generated so far in the batch)


@runtime_checkable
class StepReporting(Protocol):
    """A backend that reports each decoding step of a ``generate`` call, so progress
    shows inside one long batch; the generation stage sets ``on_step``."""

    on_step: StepFn | None


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
            from pytest_xsafety.backends.hf import conversion_target

            target = conversion_target(spec.gguf, runtime.cache_dir)
            if target is not None and not (target / "config.json").is_file():
                return (
                    f"loading {spec.name} ({where}): first use converts the "
                    f"{spec.gguf.package} GGUF to safetensors in {target.parent}/, once "
                    "(about 25 s on 2 CPU cores; later loads take about 2 s)"
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
    import hashlib
    import json
    from importlib.metadata import PackageNotFoundError, version

    out = {
        "backend": spec.backend,
        "model": spec.pin,
        "hub_id": spec.hub_id,
        "revision": spec.revision,
        "dtype": runtime.dtype or spec.dtype,
        "device": resolve_device(runtime.device) if spec.backend in ("hf", "vllm") else "",
        "system_role": str(spec.system_role),
        "chat_template_override_sha256": hashlib.sha256(
            (spec.chat_template or "").encode()
        ).hexdigest(),
        "trust_remote_code": str(spec.trust_remote_code),
        "options": json.dumps(public_options(spec.options), sort_keys=True),
    }
    for package in BACKEND_PACKAGES.get(spec.backend, ()):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "absent"
    if spec.backend in ("hf", "vllm"):
        out["weights"] = weights_fingerprint(spec)
    return out


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` or ``cpu``; torch is imported only where a GPU may exist."""
    if device != "auto":
        return device
    if not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()):
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
    import hashlib

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
