"""The backend contract: what a backend is given (a model entry, the runtime) and returns."""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pytest_xsafety.core.install import pip_install
from pytest_xsafety.core.records import Conversation, Generation


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


@dataclass(frozen=True)
class PeakMemory:
    """The most device memory a process's tensors held (``allocated``) and its
    allocator kept from the device (``reserved``, what other processes cannot use),
    in bytes, since the last reset."""

    allocated: int
    reserved: int

    def text(self) -> str:
        return (
            f"peak GPU memory {self.allocated / 1e9:.1f} GB ({self.reserved / 1e9:.1f} GB reserved)"
        )


@runtime_checkable
class MemoryReporting(Protocol):
    """A backend that can say how much GPU memory its generation took (a batch plan's
    cost, and what a second process on the same GPU would be left)."""

    def reset_peak_memory(self) -> None: ...

    def peak_memory(self) -> PeakMemory | None:
        """None where nothing was measured (the model is not on a GPU)."""
        ...


@runtime_checkable
class Streaming(Protocol):
    """A backend whose requests are independent (an HTTP API): batch size changes no
    answer, so the generation stage takes each answer as it arrives (cached and
    counted at once) and a request that fails fails alone, never retried in smaller
    batches. ``stream`` yields ``(index, answer or error)`` in completion order."""

    def stream(
        self, conversations: Sequence[Conversation], max_new_tokens: int
    ) -> Iterator[tuple[int, Generation | Exception]]: ...


@runtime_checkable
class Warns(Protocol):
    """A backend with something the run should warn about (a model name the server
    does not list, answers cut to size); the runner reads ``warnings`` after loading
    it and after each generation."""

    warnings: list[str]


def require(backend: str, *modules: str, extra: str, note: str = "") -> list[Any]:
    """Import a backend's packages, or raise one line saying which extra installs them."""
    try:
        return [importlib.import_module(m) for m in modules]
    except ImportError as exc:
        raise BackendError(
            f"the {backend!r} backend needs {' and '.join(modules)}{note} "
            f"({exc.name} is missing): {pip_install(extra)}"
        ) from exc


def chat_template_sha256(template: str | Mapping[str, str] | None) -> str:
    """sha256 of the chat template a tokenizer renders with. Some tokenizers (Command
    R+) hold several named templates; chat uses the one named ``default``."""
    if template is not None and not isinstance(template, str):
        template = template.get("default") or json.dumps(dict(template), sort_keys=True)
    return hashlib.sha256((template or "").encode()).hexdigest()
