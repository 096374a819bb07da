"""The vllm backend against a stand-in ``vllm`` module that records its calls
(vllm itself needs a CUDA GPU, which this machine lacks)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_xsafety.core.records import ChatMessage
from pytest_xsafety.engine.backends import BackendError, Runtime, load_backend
from pytest_xsafety.setup.models import BUILTIN_MODELS, ModelSpec, user_models


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class RequestOutput:
    outputs: list[Completion]


class FakeVLLM(types.ModuleType):
    """Answers each conversation with its last message's words, cut at max_tokens."""

    def __init__(self) -> None:
        super().__init__("vllm")
        self.__version__ = "0.0.test"
        self.loaded: list[dict[str, Any]] = []
        self.chats: list[dict[str, Any]] = []
        fake = self

        class SamplingParams:
            def __init__(self, **kwargs: Any) -> None:
                self.kwargs = kwargs

        class Tokenizer:
            chat_template = "{{ messages }}"

        class LLM:
            def __init__(self, **kwargs: Any) -> None:
                fake.loaded.append(kwargs)

            def get_tokenizer(self) -> Tokenizer:
                return Tokenizer()

            def chat(
                self,
                messages: list[list[dict[str, str]]],
                sampling_params: SamplingParams,
                **kw: Any,
            ) -> list[RequestOutput]:
                fake.chats.append({"messages": messages, "params": sampling_params.kwargs, **kw})
                limit = sampling_params.kwargs["max_tokens"]
                out = []
                for conv in messages:
                    words = conv[-1]["content"].split()
                    reason = "length" if len(words) > limit else "stop"
                    out.append(
                        RequestOutput(
                            [
                                Completion(
                                    " ".join(words[:limit]),
                                    list(range(min(limit, len(words)))),
                                    reason,
                                )
                            ]
                        )
                    )
                return out

        self.LLM = LLM
        self.SamplingParams = SamplingParams


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> FakeVLLM:
    module = FakeVLLM()
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def runtime(**kw: Any) -> Runtime:
    return Runtime(cache_dir=Path("/nonexistent"), **kw)


def big_model(**options: object) -> ModelSpec:
    entry = {"extends": "command-r-plus", "backend": "vllm", "options": options}
    return user_models({"big": entry}, "pyproject.toml")["big"]


def test_load_pins_weights_dtype_seed_and_tensor_parallel(fake_vllm: FakeVLLM) -> None:
    spec = big_model(tensor_parallel_size=4, max_model_len=4096)
    backend = load_backend(spec, runtime(seed=3))
    rev = BUILTIN_MODELS["command-r-plus"].revision
    assert fake_vllm.loaded == [
        {
            "model": "CohereForAI/c4ai-command-r-plus",
            "revision": rev,
            "tokenizer_revision": rev,
            "dtype": "bfloat16",
            "tensor_parallel_size": 4,
            "seed": 3,
            "trust_remote_code": False,
            "max_model_len": 4096,
        }
    ]
    info = backend.describe()
    assert info["backend"] == "vllm"
    assert info["vllm"] == "0.0.test"
    assert info["tensor_parallel_size"] == "4"
    assert info["weights"] == f"CohereForAI/c4ai-command-r-plus@{rev}"
    assert info["max_model_len"] == "4096"
    assert len(info["chat_template_sha256"]) == 64
    backend.close()


def test_generate_is_greedy_batched_and_in_order(fake_vllm: FakeVLLM) -> None:
    backend = load_backend(big_model(), runtime(dtype="float16"))
    assert fake_vllm.loaded[0]["dtype"] == "float16"
    assert fake_vllm.loaded[0]["tensor_parallel_size"] == 1
    prompts = ["one", "two words", "three short words", "four words are many"]
    convs = [(ChatMessage("system", "Be brief."), ChatMessage("user", p)) for p in prompts]
    out = backend.generate(convs, max_new_tokens=2)
    (call,) = fake_vllm.chats  # one batched call
    assert call["params"] == {"temperature": 0.0, "top_p": 1.0, "n": 1, "max_tokens": 2}
    assert call["messages"][1] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "two words"},
    ]
    assert "chat_template" not in call
    assert [g.text for g in out] == ["one", "two words", "three short", "four words"]
    assert [g.new_tokens for g in out] == [1, 2, 2, 2]
    assert [g.truncated for g in out] == [False, False, True, True]


def test_local_path_and_template_override(fake_vllm: FakeVLLM) -> None:
    entry = {"backend": "vllm", "path": "/models/m", "chat_template": "T"}
    spec = user_models({"m": entry}, "pyproject.toml")["m"]
    backend = load_backend(spec, runtime())
    assert fake_vllm.loaded[0]["model"] == "/models/m"
    assert "revision" not in fake_vllm.loaded[0]
    backend.generate([(ChatMessage("user", "hi"),)], max_new_tokens=4)
    assert fake_vllm.chats[0]["chat_template"] == "T"
    assert backend.describe()["weights"] == "local:/models/m"


def test_missing_vllm_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    # Not installed from a checkout or a git URL: the name, and how to install it from
    # the repository until it is on PyPI.
    monkeypatch.setattr("pytest_xsafety.core.install.direct_url", lambda: None)
    with pytest.raises(BackendError) as info:
        load_backend(big_model(), runtime())
    assert str(info.value).endswith(
        "pip install 'pytest-xsafety[vllm]' (until it is on PyPI: from a checkout, pip "
        "install -e 'PATH/TO/pytest-xsafety[vllm]'; or from its git repository, pip install "
        "'pytest-xsafety[vllm] @ git+URL')"
    )
