"""vLLM backend: offline batched generation on one or several GPUs.

Loads ``path``, else ``hub_id`` at its pinned ``revision`` (weights and tokenizer),
with the entry's dtype (or ``--xsafety-dtype``) and the run's seed. Options:
``tensor_parallel_size`` (GPUs one model is split over, default 1: Command R+
needs several), ``max_model_len`` and ``gpu_memory_utilization``. Decoding is
pinned as in the other backends: greedy (temperature 0), one sequence, the run's
max new tokens. Each batch goes to ``LLM.chat``, which applies the model's chat
template (or the entry's ``chat_template``) and schedules the batch itself.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_xsafety.core.records import Conversation, Generation
from pytest_xsafety.engine.backends.base import (
    BackendError,
    Runtime,
    chat_template_sha256,
    require,
)
from pytest_xsafety.setup.models import ModelSpec


def _require() -> Any:
    return require("vllm", "vllm", extra="vllm", note=" and a CUDA GPU")[0]


class VLLMBackend:
    def __init__(self, spec: ModelSpec, runtime: Runtime) -> None:
        vllm = _require()
        self.vllm = vllm
        self.spec = spec
        opts = spec.options
        self.tensor_parallel_size = int(opts.get("tensor_parallel_size", "1"))
        if spec.path:
            source, pin = {"model": spec.path}, f"local:{spec.path}"
        else:
            rev = spec.revision
            source = {"model": spec.hub_id, "revision": rev, "tokenizer_revision": rev}
            pin = f"{spec.hub_id}@{rev}"
        extra: dict[str, Any] = {}
        if "max_model_len" in opts:
            extra["max_model_len"] = int(opts["max_model_len"])
        if "gpu_memory_utilization" in opts:
            extra["gpu_memory_utilization"] = float(opts["gpu_memory_utilization"])
        dtype = runtime.dtype or spec.dtype
        try:
            self.llm = vllm.LLM(
                **source,
                dtype=dtype,
                tensor_parallel_size=self.tensor_parallel_size,
                seed=runtime.seed,
                trust_remote_code=spec.trust_remote_code,
                **extra,
            )
        except (OSError, ValueError) as exc:
            raise BackendError(f"model {spec.name!r}: vllm cannot load {pin} ({exc})") from exc
        template = spec.chat_template
        if template is None:
            template = getattr(self.llm.get_tokenizer(), "chat_template", None)
        self._describe = {
            "backend": "vllm",
            "device": _device(),
            "dtype": dtype,
            "weights": pin,
            "vllm": str(vllm.__version__),
            "tensor_parallel_size": str(self.tensor_parallel_size),
            "temperature": "0",
            "seed": str(runtime.seed),
            "chat_template_sha256": chat_template_sha256(template),
            **{k: str(v) for k, v in extra.items()},
        }

    def describe(self) -> Mapping[str, str]:
        return dict(self._describe)

    def generate(
        self, conversations: Sequence[Conversation], max_new_tokens: int
    ) -> list[Generation]:
        params = self.vllm.SamplingParams(
            temperature=0.0, top_p=1.0, n=1, max_tokens=max_new_tokens
        )
        kwargs = {"chat_template": self.spec.chat_template} if self.spec.chat_template else {}
        outputs = self.llm.chat(
            [[m.as_dict() for m in c] for c in conversations],
            sampling_params=params,
            use_tqdm=False,
            **kwargs,
        )
        if len(outputs) != len(conversations):
            raise BackendError(
                f"model {self.spec.name!r}: vllm returned {len(outputs)} outputs "
                f"for {len(conversations)} conversations"
            )
        results = []
        for request in outputs:  # LLM.chat returns outputs in input order
            out = request.outputs[0]
            results.append(Generation(out.text, len(out.token_ids), out.finish_reason == "length"))
        return results

    def close(self) -> None:
        del self.llm
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def _device() -> str:
    """The GPU's name when vllm has already imported torch (it does, to run)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return str(torch.cuda.get_device_name())
    return "cuda"
