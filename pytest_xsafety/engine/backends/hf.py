"""Hugging Face transformers backend: batched, left-padded, greedy generation.

Weights come from a local directory, a GGUF file inside an installed package
(converted once to safetensors in the cache: the conversion takes ~40 s, a
reload ~1 s), or the Hub at the entry's pinned revision. Decoding is pinned:
greedy, a fresh GenerationConfig so a model repo's sampling defaults never apply.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_xsafety.core.records import Conversation, Generation
from pytest_xsafety.core.text import sha256_file
from pytest_xsafety.engine.backends.base import (
    BackendError,
    PeakMemory,
    Runtime,
    StepFn,
    chat_template_sha256,
    require,
)
from pytest_xsafety.engine.backends.weights import conversion_dir, find_gguf, gguf_digest
from pytest_xsafety.setup.models import GGUFSource, ModelSpec


def _require() -> tuple[Any, Any]:
    torch, transformers = require("hf", "torch", "transformers", extra="hf")
    return torch, transformers


def convert_gguf(source: GGUFSource, cache_dir: Path) -> tuple[Path, str]:
    """Dequantised safetensors copy of a packaged GGUF, made once per file hash.

    Returns the directory and the GGUF's sha256 (the weights' pin). Written to a
    temporary directory and renamed, under a file lock, so concurrent xdist
    workers convert once and an interrupted conversion leaves nothing half-made.
    """
    from filelock import FileLock

    gguf = find_gguf(source)
    digest = gguf_digest(source) or sha256_file(gguf)
    target = conversion_dir(source.package, digest, cache_dir)
    if (target / "config.json").is_file():
        return target, digest
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():
            return target, digest
        _, transformers = _require()
        tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are already dequantised; drop the quantizer so save_pretrained
        # writes plain safetensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target, digest


def pick_device(torch: Any, runtime: Runtime) -> str:
    """The device to load on; under xdist, worker gwN takes GPU N mod the GPU count."""
    device = runtime.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and runtime.worker is not None:
        count = torch.cuda.device_count()
        if count > 1:
            device = f"cuda:{runtime.worker % count}"
    return device


def stop_ids(tokenizer: Any, configured: int | list[int] | None) -> list[int]:
    """Token ids that end an answer: the repo's configured EOS, the tokenizer's EOS and
    the token the chat template closes an assistant turn with.

    Repos do not always list the turn-closing token: Gemma-7b-it's generation config
    names ``<eos>`` only, while the model ends its turns with ``<end_of_turn>``; without
    it generation runs on into an invented next turn until the token limit.
    """
    ids = [configured] if isinstance(configured, int) else list(configured or [])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    closing = turn_end_token(tokenizer)
    if closing is not None:
        ids.append(tokenizer.convert_tokens_to_ids(closing))
    return list(dict.fromkeys(ids))


_ANSWER = "xsafety-probe-answer"


def turn_end_token(tokenizer: Any) -> str | None:
    """The special token the chat template writes right after an assistant's text."""
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _ANSWER}],
            tokenize=False,
        )
    except Exception:  # no template, or one that rejects the probe: configured EOS only
        return None
    tail = str(text).partition(_ANSWER)[2].lstrip()
    specials = sorted(tokenizer.all_special_tokens, key=len, reverse=True)
    return next((t for t in specials if tail.startswith(t)), None)


def check_system_turn(tokenizer: Any, model: str) -> None:
    """Fail at load time when the template rejects or silently drops a system turn.

    Gemma's and Mistral's templates raise on one; Phi-3-mini's first template dropped
    it, so a system-prompt strategy would quietly test nothing.
    """
    if tokenizer.chat_template is None:
        return  # rendering will fail with transformers' own message
    probe = "xsafety-probe-system"
    messages = [{"role": "system", "content": probe}, {"role": "user", "content": "hi"}]
    fix = f"set system_role = false under [tool.xsafety.models.{model}]"
    try:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:
        raise BackendError(
            f"model {model!r}: its chat template rejects a system turn ({exc}); {fix}, "
            "so that system text is folded into the first user turn"
        ) from exc
    if probe not in str(text):
        raise BackendError(
            f"model {model!r}: its chat template silently drops system turns; {fix}, "
            "so that system text is folded into the first user turn"
        )


def step_counter(torch: Any, transformers: Any, prompt_len: int, eos: Any, on_step: Any) -> Any:
    """A stopping criterion that never stops: it reports each decoding step and the
    tokens generated so far (sequences that reached EOS stop counting)."""
    eos_ids = torch.tensor(eos if isinstance(eos, list) else [eos])

    class StepCounter(transformers.StoppingCriteria):  # type: ignore[misc]
        def __init__(self) -> None:
            self.finished: Any = None
            self.tokens = 0

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            last = input_ids[:, -1]
            # This step's token counts for every sequence that had not ended before it.
            self.tokens += int(last.numel() if self.finished is None else (~self.finished).sum())
            done = torch.isin(last, eos_ids.to(last.device))
            self.finished = done if self.finished is None else self.finished | done
            on_step(input_ids.shape[1] - prompt_len, self.tokens)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return StepCounter()


class HFBackend:
    on_step: StepFn | None = None  # set by the generation stage (see base.StepReporting)

    def __init__(self, spec: ModelSpec, runtime: Runtime) -> None:
        torch, transformers = _require()
        self.torch = torch
        self.transformers = transformers
        self.spec = spec
        if runtime.threads:
            torch.set_num_threads(runtime.threads)
        self.device = device = pick_device(torch, runtime)
        dtype_name = runtime.dtype or spec.dtype
        dtype = "auto" if dtype_name == "auto" else getattr(torch, dtype_name)
        source, kwargs, self.weights = self._source(spec, runtime.cache_dir)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                source, trust_remote_code=spec.trust_remote_code, **kwargs
            )
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                source, dtype=dtype, trust_remote_code=spec.trust_remote_code, **kwargs
            )
        except OSError as exc:
            raise BackendError(
                f"model {spec.name!r}: cannot load {source} ({exc}). Without network access, "
                f"set 'path' to a local copy under [tool.xsafety.models.{spec.name}]"
            ) from exc
        self.model.to(device).eval()
        if spec.chat_template:
            self.tokenizer.chat_template = spec.chat_template
        self.tokenizer.padding_side = "left"  # decoder-only: pad on the left
        if self.tokenizer.pad_token_id is None:  # Llama-2, Mistral: no pad token
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if spec.system_role:
            check_system_turn(self.tokenizer, spec.name)
        gen = self.model.generation_config
        self.eos = stop_ids(self.tokenizer, gen.eos_token_id)
        self.make_config = transformers.GenerationConfig
        self.decoding = {
            "do_sample": False,
            "num_beams": 1,
            "eos_token_id": self.eos,
            "bos_token_id": gen.bos_token_id,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        # generate() fills every setting a passed config leaves unset from the model's
        # own generation_config (a repo's repetition_penalty, top_k, ...): replace it,
        # so only the pinned decoding applies.
        self.model.generation_config = transformers.GenerationConfig(**self.decoding)
        self.seed = runtime.seed
        self._describe = {
            "backend": "hf",
            "device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "weights": self.weights,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "chat_template_sha256": chat_template_sha256(self.tokenizer.chat_template),
            "stop_tokens": ",".join(self.tokenizer.convert_ids_to_tokens(self.eos)),
        }

    @staticmethod
    def _source(spec: ModelSpec, cache_dir: Path) -> tuple[str, dict[str, Any], str]:
        if spec.path:
            return spec.path, {}, f"local:{spec.path}"
        if spec.gguf:
            try:
                target, digest = convert_gguf(spec.gguf, cache_dir)
                return str(target), {}, f"gguf-sha256:{digest}"
            except BackendError:
                if not spec.hub_id:
                    raise
                # Fall back to the Hub copy of the same model when the package is absent.
        if not spec.hub_id:
            raise BackendError(f"model {spec.name!r} has no path, GGUF or hub_id to load from")
        return spec.hub_id, {"revision": spec.revision}, f"{spec.hub_id}@{spec.revision}"

    def describe(self) -> Mapping[str, str]:
        return dict(self._describe)

    def render(self, conversation: Conversation) -> str:
        text = self.tokenizer.apply_chat_template(
            [m.as_dict() for m in conversation], add_generation_prompt=True, tokenize=False
        )
        return str(text)

    def room(self, input_tokens: int, max_new_tokens: int) -> int:
        """New tokens that fit: never past the model's context window, however large
        ``max_new_tokens`` is (a response stopped there counts as truncated)."""
        context = getattr(self.model.config, "max_position_embeddings", None)
        if not isinstance(context, int) or context <= 0:
            return max_new_tokens
        if input_tokens >= context:
            raise BackendError(
                f"model {self.spec.name!r}: the conversation ({input_tokens} tokens) fills "
                f"the model's context window ({context} tokens)"
            )
        return min(max_new_tokens, context - input_tokens)

    def generate(
        self, conversations: Sequence[Conversation], max_new_tokens: int
    ) -> list[Generation]:
        torch = self.torch
        texts = [self.render(c) for c in conversations]
        # The chat template already holds the special tokens (BOS included).
        enc = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False).to(
            self.device
        )
        max_new_tokens = self.room(enc["input_ids"].shape[1], max_new_tokens)
        torch.manual_seed(self.seed)
        try:
            with torch.inference_mode():
                config = self.make_config(**self.decoding, max_new_tokens=max_new_tokens)
                extra: dict[str, Any] = {}
                if self.on_step is not None:
                    prompt_len = enc["input_ids"].shape[1]
                    counter = step_counter(
                        torch, self.transformers, prompt_len, self.eos, self.on_step
                    )
                    extra["stopping_criteria"] = self.transformers.StoppingCriteriaList([counter])
                out = self.model.generate(**enc, generation_config=config, **extra)
        except torch.cuda.OutOfMemoryError:
            # Free the failed batch's blocks before the generation stage retries it in halves.
            del enc
            torch.cuda.empty_cache()
            raise
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        eos = set(self.eos)
        results = []
        for ids in new:
            n = next((i for i, t in enumerate(ids) if t in eos), None)
            length = len(ids) if n is None else n
            text = self.tokenizer.decode(ids[:length], skip_special_tokens=True)
            results.append(Generation(text, length, n is None and length >= max_new_tokens))
        return results

    def reset_peak_memory(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory(self) -> PeakMemory | None:
        if not self.device.startswith("cuda"):
            return None
        cuda = self.torch.cuda
        return PeakMemory(
            cuda.max_memory_allocated(self.device), cuda.max_memory_reserved(self.device)
        )

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()
