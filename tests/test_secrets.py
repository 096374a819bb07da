"""No secret leaves the process (issue 22, H1 and H2): the one scrubbing policy
(``core/secrets.py``) and every sink it guards. The canary test plants secrets (a
URL's user and password, a query token, an API key in the environment), lets a
server echo them back in a 401 and a missing key variable fail a model, then greps
every file the run wrote and its whole terminal output for each secret in its
plain, URL-encoded and base64 forms."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest

from pytest_xsafety.core.records import CaseRecord
from pytest_xsafety.core.secrets import key_secrets, remember, scrub, url_secrets
from pytest_xsafety.reporting.files import write_report
from pytest_xsafety.reporting.wire import encode
from pytest_xsafety.setup.models import user_models
from pytest_xsafety.snapshots.manifest import render_manifest
from tests.fault_server import FaultServer
from tests.helpers import TEST_FILE, make_report, result_set, write_suite

USER, PASSWORD, TOKEN, KEY = "us3r-canary", "pa55/canary@7", "tok-canary-9q", "sk-canary-key-5e1f"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def leaked_forms() -> list[str]:
    """Each secret as it may travel: plain, URL-encoded, base64; and HTTP Basic's
    ``base64(user:password)``."""
    out = [
        f(s) for s in (USER, PASSWORD, TOKEN, KEY) for f in (str, lambda s: quote(s, safe=""), b64)
    ]
    return [*out, b64(f"{USER}:{PASSWORD}")]


def test_every_form_of_a_url_secret_is_scrubbed() -> None:
    url = f"https://{USER}:{quote(PASSWORD, safe='')}@llm.example.com/v1?token={TOKEN}&v=1"
    secrets = url_secrets(url)
    alone = [f(s) for s in (PASSWORD, TOKEN) for f in (str, lambda s: quote(s, safe=""), b64)]
    basic = f"Authorization: Basic {b64(USER + ':' + PASSWORD)}"
    assert secrets.scrub(" | ".join([url, *alone, basic])) == (
        "https://***@llm.example.com/v1?token=***&v=1 | *** | *** | *** | *** | *** | *** | "
        "Authorization: Basic ***"
    )


def test_short_values_are_scrubbed_only_in_their_phrases() -> None:
    # A local server's key "none", a password "pw", a user "admin", a query "v=1":
    # alone, scrubbing them would take every such word out of a report.
    secrets = url_secrets("http://admin:pw@h/v1?token=TOK&v=1") | key_secrets("none")
    text = "admin: none of it, pw, v=1, TOK; admin:pw token=TOK Bearer none"
    assert secrets.scrub(text) == "admin: none of it, pw, v=1, TOK; *** token=*** Bearer ***"


def test_a_user_without_a_password_is_the_credential() -> None:
    token = "ghp-canary-user-token"
    assert url_secrets(f"https://{token}@host/v1").scrub(f"user {token}") == "user ***"


def test_a_model_entry_knows_its_secrets_and_its_repr_shows_none() -> None:
    url = f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:9/v1?token={TOKEN}"
    entry = {"backend": "openai", "hub_id": "m", "options": {"base_url": url, "api_key_env": "K"}}
    spec = user_models({"api": entry}, "pyproject.toml")["api"]
    secrets = spec.secrets({"K": KEY})
    assert {PASSWORD, TOKEN, KEY} <= secrets.values
    assert {("", f"{USER}:{PASSWORD}"), ("Bearer ", KEY), ("token=", TOKEN)} <= secrets.phrases
    shown = repr(spec)
    assert shown.startswith("ModelSpec(name='api', hub_id='m', ")
    assert "'base_url': 'http://127.0.0.1:9/v1'" in shown
    assert not any(form in shown for form in leaked_forms())


def test_the_wire_scrubs_every_property() -> None:
    remember(key_secrets(KEY))
    record = CaseRecord("m", "baseline", "1", "homonyms", "safe", "c", "error",
                        error=f"BackendError: HTTP 401: Authorization: Bearer {KEY}")  # fmt: skip
    props = dict(encode(record))
    assert props["xsafety_error"] == "BackendError: HTTP 401: Authorization: Bearer ***"
    assert scrub(f"key={quote(KEY)}") == "key=***"


def test_report_files_and_manifests_scrub_what_they_are_given(tmp_path: Path) -> None:
    remember(key_secrets(KEY))
    records = [replace(r, error=f"HTTP 401: Bearer {KEY}") if r.error else r for r in result_set()]
    report = make_report(records)
    report = replace(report, info=replace(report.info, warnings=(f"key {KEY} rejected",)))
    written = write_report(report, tmp_path / "out")
    assert "HTTP 401: Bearer ***" in (tmp_path / "out" / "results.json").read_text()
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
    assert render_manifest({"pins": {"note": KEY}}) == '{\n  "pins": {\n    "note": "***"\n  }\n}\n'


# The canary run -----------------------------------------------------------------------

PYPROJECT = """
[tool.xsafety.models.basic]
backend = "openai"
hub_id = "echo-basic"
options = {{ base_url = "{secret_url}", api_key_env = "", max_retries = 0 }}

[tool.xsafety.models.bearer]
backend = "openai"
hub_id = "echo-bearer"
options = {{ base_url = "{token_url}", api_key_env = "XSAFETY_CANARY_KEY", max_retries = 0 }}

[tool.xsafety.models.unset]
backend = "openai"
hub_id = "unset-model"
options = {{ base_url = "{secret_url}", api_key_env = "XSAFETY_CANARY_UNSET" }}

[tool.xsafety.models.fine]
backend = "openai"
hub_id = "fine-model"
options = {{ base_url = "{token_url}", api_key_env = "XSAFETY_CANARY_KEY" }}
"""


OWN_TEST = """
import os

def test_own():
    print("the key is", os.environ["XSAFETY_CANARY_KEY"])
    raise RuntimeError(f"could not reach {os.environ['XSAFETY_CANARY_URL']}")
"""


def test_canary_secrets_reach_no_file_and_no_terminal_line(
    pytester: pytest.Pytester,
    fault_server: FaultServer,
    mode: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XSAFETY_CANARY_KEY", KEY)
    monkeypatch.delenv("XSAFETY_CANARY_UNSET", raising=False)
    # The echoing models get a 401 whose body quotes the URL and Authorization header.
    fault_server.by_model = {"echo-basic": "echo401", "echo-bearer": "echo401"}
    host = f"127.0.0.1:{fault_server.port}"
    secret_url = f"http://{USER}:{quote(PASSWORD, safe='')}@{host}/v1?token={TOKEN}"
    token_url = f"http://{host}/v1?token={TOKEN}"
    monkeypatch.setenv("XSAFETY_CANARY_URL", secret_url)
    pytester.makefile(
        ".toml", pyproject=PYPROJECT.format(secret_url=secret_url, token_url=token_url)
    )
    # A test of the user's own that prints a secret and fails with one in its message.
    pytester.makepyfile(test_suite=TEST_FILE, test_own=OWN_TEST)
    write_suite(pytester.path / "suite.csv")
    result = pytester.runpytest_subprocess(
        "--xsafety-model=basic,bearer,unset,fine", "--xsafety-suite=suite.csv",
        "--xsafety-report=out", "--xsafety-cache-dir=cache", "--junitxml=junit.xml",
        "--snapshot-update", "-rA", "--showlocals", *mode,
    )  # fmt: skip
    result.assert_outcomes(errors=18, passed=3, xfailed=3, failed=1)
    # The secrets were used, and echoed back...
    assert f"Basic {b64(USER + ':' + PASSWORD)}" in fault_server.auth
    assert f"Bearer {KEY}" in fault_server.auth
    assert all(path.endswith(f"?token={TOKEN}") for path in fault_server.paths)
    terminal = result.stdout.str() + result.stderr.str()
    assert f"http://{host}/v1/chat/completions?token=***: Authorization: Basic ***" in terminal
    assert "Authorization: Bearer ***" in terminal
    assert "environment variable XSAFETY_CANARY_UNSET, which is not set" in terminal
    assert f"RuntimeError: could not reach http://***@{host}/v1?token=***" in terminal
    assert "the key is ***" in terminal
    # ...and no form of any of them is in the terminal or a file (but the config).
    written = [p for p in pytester.path.rglob("*") if p.is_file() and p.name != "pyproject.toml"]
    names = {p.relative_to(pytester.path).as_posix() for p in written}
    assert {"junit.xml", "out/results.json", "out/results.csv", "out/summary.md",
            "snapshots/fine/baseline/_manifest.json", "cache/responses.sqlite"} <= names  # fmt: skip
    assert any(n.startswith(".pytest_cache/") for n in names)
    for form in leaked_forms():
        assert form not in terminal, form
        for path in written:
            assert form.encode() not in path.read_bytes(), (form, path)
