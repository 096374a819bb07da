"""The openai backend against a small OpenAI-compatible server on 127.0.0.1.

The server is :mod:`tests.fault_server`: it echoes the prompt's words, cut at
``max_tokens``, refuses prompts matching ``refuse``, and misbehaves as a test
scripts it (``plan``, ``rules``, ``always``, ``die_after``...).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

from pytest_xsafety.core.records import ChatMessage, Conversation
from pytest_xsafety.engine.backends import BackendError
from tests.fault_server import FaultServer, openai_backend
from tests.helpers import write_suite

pytest.importorskip("openai")

CANARY = "sk-canary-4f9e1c0d7b2a"  # a fake key: it must never show up in output


@pytest.fixture
def server(fault_server: FaultServer) -> FaultServer:
    return fault_server


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XSAFETY_TEST_KEY", CANARY)


def backend(server: FaultServer, **options: object) -> Any:
    return openai_backend(str(options.pop("base_url", server.base_url)), **options)


def conv(text: str) -> Conversation:
    return (ChatMessage("system", "Be brief."), ChatMessage("user", text))


PROMPTS = [f"prompt {i} " + "word " * (i % 4) for i in range(12)]


def test_generation_keeps_order_and_pins_decoding(server: FaultServer) -> None:
    server.delay = 0.02
    b = backend(server, seed=7)
    out = b.generate([conv(p) for p in PROMPTS], max_new_tokens=4)
    b.close()
    for prompt, gen in zip(PROMPTS, out, strict=True):
        words = ["Sure:", *prompt.split()]
        assert gen.text == " ".join(words[:4])
        assert gen.new_tokens == min(4, len(words))
        assert gen.truncated == (len(words) > 4)
    assert any(g.truncated for g in out)
    assert not all(g.truncated for g in out)
    first = server.requests[0]
    assert first["messages"][0] == {"role": "system", "content": "Be brief."}
    assert {k: first[k] for k in ("model", "temperature", "top_p", "n", "max_tokens", "seed")} == {
        "model": "served-model",
        "temperature": 0,
        "top_p": 1,
        "n": 1,
        "max_tokens": 4,
        "seed": 7,
    }
    assert server.auth == {f"Bearer {CANARY}"}


def test_concurrency_is_bounded(server: FaultServer) -> None:
    server.delay = 0.1
    b = backend(server, concurrency=3)
    b.generate([conv(p) for p in PROMPTS], max_new_tokens=8)
    b.close()
    assert len(server.requests) == len(PROMPTS)
    assert server.max_in_flight == 3


@pytest.mark.parametrize("failure", ["429", "500", "503"])
def test_rate_limit_and_server_errors_are_retried(server: FaultServer, failure: str) -> None:
    server.plan = [failure, failure]
    b = backend(server, concurrency=1, max_retries=2)
    (gen,) = b.generate([conv("hello there")], max_new_tokens=8)
    b.close()
    assert gen.text == "Sure: hello there"
    assert len(server.requests) == 3


def test_timeout_is_retried(server: FaultServer) -> None:
    server.plan = ["hang"]
    b = backend(server, timeout=0.3, max_retries=1)
    start = time.perf_counter()
    (gen,) = b.generate([conv("hello")], max_new_tokens=8)
    b.close()
    assert gen.text == "Sure: hello"
    assert len(server.requests) == 2
    assert time.perf_counter() - start < 1.4  # did not wait for the hung answer


def test_timeout_every_time_fails(server: FaultServer) -> None:
    server.always = "hang"
    b = backend(server, timeout=0.2, max_retries=1)
    with pytest.raises(BackendError, match=r"failed 2 time\(s\); last: no response within 0.2 s"):
        b.generate([conv("hello")], max_new_tokens=8)
    b.close()


def test_exhausted_retries_name_endpoint_and_status_not_key(server: FaultServer) -> None:
    server.always = "502"
    b = backend(server, max_retries=2, concurrency=1, backoff=0.05)
    with pytest.raises(BackendError) as info:
        b.generate([conv(p) for p in PROMPTS[:5]], max_new_tokens=8)
    b.close()
    # The first prompt's 3 attempts; then the rest stop (one may have started).
    assert 3 <= len(server.requests) <= 4
    text = str(info.value)
    assert f"{server.base_url}/chat/completions failed 3 time(s); last: HTTP 502" in text
    assert "fake failure 502" in text
    assert CANARY not in text
    assert info.value.__cause__ is None


def test_client_errors_fail_at_once(server: FaultServer) -> None:
    server.always = "401"
    b = backend(server, max_retries=5)
    with pytest.raises(BackendError, match=r"answered HTTP 401.*check the key's environment"):
        b.generate([conv("hello")], max_new_tokens=8)
    b.close()
    assert len(server.requests) == 1


def test_describe_records_settings_never_the_key(server: FaultServer) -> None:
    url = server.base_url.replace("127.0.0.1", "user:pw@127.0.0.1")
    b = backend(server, base_url=url)
    before = b.describe()
    b.generate([conv("hi")], max_new_tokens=8)
    after = b.describe()
    b.close()
    assert before["base_url"] == server.base_url
    assert (before["model"], before["temperature"], before["top_p"], before["seed"]) == (
        "served-model",
        "0",
        "1",
        "none",
    )
    assert before["openai"]
    assert "system_fingerprint" not in before
    assert after["system_fingerprint"] == "fp_fake"
    assert not any(CANARY in v or "pw" in v for v in after.values())


def test_missing_key_names_the_variable_not_a_value(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XSAFETY_TEST_KEY")
    with pytest.raises(
        BackendError, match="environment variable XSAFETY_TEST_KEY, which is not set"
    ):
        backend(server)
    b = backend(server, api_key_env="")  # an endpoint without a key
    assert b.generate([conv("hi")], max_new_tokens=2)[0].text == "Sure: hi"
    b.close()


PYPROJECT = """
[tool.xsafety.models.served]
backend = "openai"
hub_id = "served-model"
options = {{ base_url = "{url}", api_key_env = "XSAFETY_TEST_KEY", concurrency = 4 }}

[tool.xsafety.models.fake]
backend = "fake"
"""
TEST_FILE = """
from pytest_xsafety.plugin import CaseCheck

def test_xsafety(xsafety_case: CaseCheck) -> None:
    xsafety_case.check()
"""


def _project(pytester: pytest.Pytester, server: FaultServer) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT.format(url=server.base_url))
    pytester.makepyfile(test_suite=TEST_FILE)
    write_suite(pytester.path / "suite.csv")


def test_plugin_end_to_end(pytester: pytest.Pytester, server: FaultServer) -> None:
    server.refuse = "poison|break into|stolen"
    _project(pytester, server)
    result = pytester.runpytest(
        "--xsafety-model", "served", "--xsafety-suite", "suite.csv", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [
            f"xsafety: model served: served-model at {server.base_url}, *backend openai*",
            "served*baseline*6*0.0% (0/0 of 3)*0.0% (0 of 3)*",
        ]
    )
    assert len(server.requests) == 6
    assert CANARY not in result.stdout.str() + result.stderr.str()


def test_backend_override_end_to_end(pytester: pytest.Pytester, server: FaultServer) -> None:
    _project(pytester, server)
    # The openai entry run by the fake backend instead: no request reaches the server.
    result = pytester.runpytest(
        "--xsafety-model", "served", "--xsafety-suite", "suite.csv", "--xsafety-backend", "fake"
    )
    result.assert_outcomes(passed=3, xfailed=3)
    assert server.requests == []
    # The fake entry has no endpoint for the openai backend: a clean usage error.
    result = pytester.runpytest(
        "--xsafety-model", "fake", "--xsafety-suite", "suite.csv", "--xsafety-backend", "openai"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: pytest-xsafety: --xsafety-backend=openai (model 'fake'): *needs options.base_url*"]
    )


def test_missing_openai_says_what_to_install(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # import openai raises ImportError
    # Not installed from a checkout or a git URL: the name, and how to install it from
    # the repository until it is on PyPI.
    monkeypatch.setattr("pytest_xsafety.core.install.direct_url", lambda: None)
    with pytest.raises(BackendError) as info:
        backend(server)
    assert str(info.value).endswith(
        "pip install 'pytest-xsafety[openai]' (until it is on PyPI: from a checkout, pip "
        "install -e 'PATH/TO/pytest-xsafety[openai]'; or from its git repository, pip install "
        "'pytest-xsafety[openai] @ git+URL')"
    )


def test_secrets_never_reach_any_output(
    pytester: pytest.Pytester, server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API key (and a Hub token) are in the environment; every file the run
    # writes (JUnit XML, the response cache, anything else under the project) and
    # the terminal output are scanned for them.
    monkeypatch.setenv("HF_TOKEN", CANARY + "-hf")
    server.refuse = "poison"
    _project(pytester, server)
    result = pytester.runpytest(
        "--xsafety-model", "served", "--xsafety-suite", "suite.csv", "-p", "no:cacheprovider",
        "--junitxml", "junit.xml", "--xsafety-cache-dir", "cache", "-rA",
        "--xsafety-report", "report",
    )  # fmt: skip
    result.assert_outcomes(passed=4, xfailed=2)
    assert server.auth == {f"Bearer {CANARY}"}  # the key was used...
    assert CANARY not in result.stdout.str() + result.stderr.str()  # ...and never shown
    written = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert any(p.name == "responses.sqlite" for p in written)
    assert any(p.name == "junit.xml" for p in written)
    assert any(p.name == "results.json" for p in written)  # with the run's pins
    for path in written:
        assert CANARY.encode() not in path.read_bytes(), path
