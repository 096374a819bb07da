"""The pip command that adds an extra names where this installation came from (PEP 610
direct_url.json): the package is not on PyPI yet. ``xsafety --version`` works."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pytest_xsafety.cli import main
from pytest_xsafety.core.install import install_command
from pytest_xsafety.setup.models import RegistryError, check_installed
from pytest_xsafety.setup.project import model_registry
from pytest_xsafety.setup.suites import SuiteError, hub_download


@pytest.mark.parametrize(
    ("origin", "command"),
    [
        (
            {"url": "file:///src/pytest-xsafety", "dir_info": {"editable": True}},
            "pip install -e '/src/pytest-xsafety[hf]'",
        ),
        (
            {"url": "file:///src/pytest-xsafety", "dir_info": {}},
            "pip install '/src/pytest-xsafety[hf]'",
        ),
        (
            {
                "url": "https://github.com/acme/pytest-xsafety",
                "vcs_info": {"vcs": "git", "commit_id": "0123abc"},
            },
            "pip install 'pytest-xsafety[hf] @ git+https://github.com/acme/pytest-xsafety@0123abc'",
        ),
        (
            None,
            "pip install 'pytest-xsafety[hf]' (until it is on PyPI: from a checkout, pip install "
            "-e 'PATH/TO/pytest-xsafety[hf]'; or from its git repository, pip install "
            "'pytest-xsafety[hf] @ git+URL')",
        ),
    ],
)
def test_install_command_names_the_source(origin: dict[str, Any] | None, command: str) -> None:
    assert install_command("hf", origin) == command


def test_a_missing_extra_names_the_install_of_this_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    checkout = {"url": "file:///src/pytest-xsafety", "dir_info": {"editable": True}}
    monkeypatch.setattr("pytest_xsafety.core.install.direct_url", lambda: checkout)
    monkeypatch.setattr("pytest_xsafety.setup.models._installed", lambda module: False)
    spec = model_registry(tmp_path)["llama2"]
    with pytest.raises(RegistryError) as info:
        check_installed([spec])
    assert str(info.value) == (
        "model 'llama2' uses the 'hf' backend, which needs torch and transformers (torch is "
        "missing): pip install -e '/src/pytest-xsafety[hf]'"
    )


def test_an_offline_hub_error_reads_as_one_sentence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub

    def offline(**kwargs: Any) -> str:
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files, "
                      "and couldn't find them in the cached files; check your connection.")  # fmt: skip

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(SuiteError) as info:
        hub_download(tmp_path)
    message = str(info.value)
    assert ".. " not in message
    assert message.endswith(
        "check your connection. Pass --xsafety-suite=PATH/TO/xstest_prompts.csv to use a local "
        "copy."
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"xsafety \d+\.\d+\.\d+\n", out)
