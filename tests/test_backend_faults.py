"""The openai backend's faults (issue 22), each against :mod:`tests.fault_server`:
a missing key variable (M1), a query in ``base_url`` (M6), an endpoint that is down
(L1), non-JSON answers (L9), huge answers (L10), a server killed mid-batch (R1),
client errors (R2), a model name the server does not list (R4), progress as
answers arrive (R5) and server error bodies in causes (R7). Each test is named
after its item."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pytest_xsafety.core.records import ChatMessage, Generation
from pytest_xsafety.engine import pipeline
from pytest_xsafety.engine.backends import Backend, BackendError, Runtime, load_backend, pins
from pytest_xsafety.engine.batching import Failure, Progress, Request, run_batches
from pytest_xsafety.engine.pipeline import Runner, status_line
from pytest_xsafety.setup.models import BUILTIN_MODELS, ModelSpec, user_models
from pytest_xsafety.setup.options import parse_config
from tests.fault_server import CONTEXT_MESSAGE, FaultServer, closed_port, openai_backend
from tests.helpers import TEST_FILE, write_suite

pytest.importorskip("openai")

KEY = "sk-faults-3c9d2e7a1b"


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XSAFETY_TEST_KEY", KEY)
    monkeypatch.delenv("XSAFETY_UNSET_KEY", raising=False)


def requests(prompts: list[str]) -> list[Request]:
    return [Request(f"k{i}", (ChatMessage("user", p),), (0, i)) for i, p in enumerate(prompts)]


PROMPTS = [f"prompt number {i}" for i in range(12)]


def generate(backend: Any, prompts: list[str], **kw: Any) -> dict[str, Generation | Failure]:
    try:
        return run_batches(
            lambda: backend, "api/baseline", [requests(prompts)], max_new_tokens=8, **kw
        )
    finally:
        backend.close()


# M6: a query in base_url ------------------------------------------------------------


def test_m6_a_query_in_base_url_is_sent_with_every_request(fault_server: FaultServer) -> None:
    b = openai_backend(fault_server.base_url + "?token=tok-m6-query&v=2")
    out = b.generate([(ChatMessage("user", "hello there"),)], max_new_tokens=8)
    b.close()
    assert out[0].text == "Sure: hello there"
    assert fault_server.paths == ["/v1/chat/completions?token=tok-m6-query&v=2"]


def test_m6_the_error_names_the_url_requested_with_query_values_hidden(
    fault_server: FaultServer,
) -> None:
    fault_server.always = "503"
    b = openai_backend(fault_server.base_url + "?token=tok-m6-query", max_retries=0)
    with pytest.raises(BackendError) as info:
        b.generate([(ChatMessage("user", "hello"),)], max_new_tokens=8)
    b.close()
    assert str(info.value) == (
        f"model 'api': http://127.0.0.1:{fault_server.port}/v1/chat/completions?token=*** "
        "failed 1 time(s); last: HTTP 503: fake failure 503. Raise options.max_retries or "
        "options.timeout if the server is just slow"
    )
    assert fault_server.paths == ["/v1/chat/completions?token=tok-m6-query"]


# L9: non-JSON answers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "quoted"),
    [
        ("nonjson", "answered non-JSON: <html><body><h1>502 Bad Gateway</h1><p>nginx</p>"),
        ("badjson", 'answered non-JSON: {"choices": ['),
    ],
)
def test_l9_a_non_json_answer_is_a_one_line_cause(
    fault_server: FaultServer, mode: str, quoted: str
) -> None:
    fault_server.always = mode
    out = generate(openai_backend(fault_server.base_url), PROMPTS[:3])
    causes = {g.cause for g in out.values() if isinstance(g, Failure)}
    assert len(out) == 3
    (cause,) = causes  # the same cause for each: one line per group in the summary
    assert cause.startswith(
        f"BackendError: model 'api': http://127.0.0.1:{fault_server.port}/v1/chat/completions "
        + quoted
    )
    assert "\n" not in cause
    assert len(cause) < 600
    assert len(fault_server.requests) == 3  # not retried: the same page would come back


# L10: huge answers --------------------------------------------------------------------


def test_l10_an_answer_beyond_max_tokens_is_cut_marked_and_said(
    fault_server: FaultServer,
) -> None:
    fault_server.always = "huge"
    fault_server.huge_chars = 4_000_000
    b = openai_backend(fault_server.base_url)
    out = b.generate([(ChatMessage("user", "hi"),), (ChatMessage("user", "ho"),)], 8)
    b.close()
    assert [len(g.text) for g in out] == [256, 256]  # 8 tokens x 32 characters
    assert all(g.truncated for g in out)
    assert b.warnings == [  # type: ignore[attr-defined]
        f"answers cut: model 'api': http://127.0.0.1:{fault_server.port}/v1/chat/completions "
        "sent an answer of 4,000,000 characters for max_tokens 8; answers are kept up to "
        "32 characters a token (256) and marked truncated"
    ]


# R1: answers of an unfinished batch ----------------------------------------------------


def test_r1_a_server_killed_mid_batch_leaves_every_answer_in_the_store(
    fault_server: FaultServer,
) -> None:
    fault_server.die_after = 5
    stored: list[tuple[Request, Generation]] = []
    out = generate(
        openai_backend(fault_server.base_url, concurrency=3, max_retries=1),
        PROMPTS,
        store=stored.extend,
    )
    assert fault_server.answered == 5
    assert len(stored) == 5
    assert sorted(r.key for r, _ in stored) == sorted(
        k for k, g in out.items() if isinstance(g, Generation)
    )
    causes = {g.cause for g in out.values() if isinstance(g, Failure)}
    assert len(out) - len(stored) == 7
    (cause,) = causes
    assert cause.startswith(
        f"BackendUnavailable: model 'api': http://127.0.0.1:{fault_server.port}/v1/chat/completions failed"
    )
    assert cause.endswith("Is the server running at that address?")


# R2: client errors ------------------------------------------------------------------


def test_r2_a_400_is_sent_once_and_the_batch_keeps_its_good_answers(
    fault_server: FaultServer,
) -> None:
    fault_server.rules = [("number 3$", "context")]
    out = generate(openai_backend(fault_server.base_url, max_retries=5), PROMPTS[:6])
    assert len(fault_server.requests) == 6  # one POST per prompt: no retry, no halving
    assert [k for k, g in out.items() if isinstance(g, Failure)] == ["k3"]
    assert all(isinstance(out[f"k{i}"], Generation) for i in (0, 1, 2, 4, 5))
    failure = out["k3"]
    assert isinstance(failure, Failure)
    assert failure.cause == (
        f"BackendError: model 'api': http://127.0.0.1:{fault_server.port}/v1/chat/completions "
        f"answered HTTP 400: {CONTEXT_MESSAGE}"
    )


@pytest.mark.parametrize("status", ["408", "429"])
def test_r2_a_408_or_429_is_retried(fault_server: FaultServer, status: str) -> None:
    fault_server.plan = [status]
    b = openai_backend(fault_server.base_url, max_retries=2)
    (gen,) = b.generate([(ChatMessage("user", "hello"),)], max_new_tokens=8)
    b.close()
    assert gen.text == "Sure: hello"
    assert len(fault_server.requests) == 2


# R4: the model name and what the server served --------------------------------------


def test_r4_a_model_the_server_does_not_list_is_a_warning(fault_server: FaultServer) -> None:
    fault_server.models = ["smollm2.gguf"]
    fault_server.served_as = "smollm2.gguf"
    b = openai_backend(fault_server.base_url)
    b.generate([(ChatMessage("user", "hi"),)], 8)
    b.generate([(ChatMessage("user", "ho"),)], 8)
    b.close()
    assert fault_server.listings == 1  # read once, at load
    assert b.warnings == [  # type: ignore[attr-defined]
        f"model 'api': http://127.0.0.1:{fault_server.port}/v1/models does not list "
        "'served-model' (it lists 'smollm2.gguf'); a server that serves one model answers "
        "under any name: check options.model (or hub_id)"
    ]
    said = b.describe()
    assert (said["model"], said["served_model"], said["system_fingerprint"]) == (
        "served-model",
        "smollm2.gguf",
        "fp_fake",
    )


def test_r4_a_listed_model_or_a_server_without_the_route_is_no_warning(
    fault_server: FaultServer,
) -> None:
    b = openai_backend(fault_server.base_url)  # lists served-model
    b.close()
    fault_server.models = None  # GET /v1/models: 404
    c = openai_backend(fault_server.base_url)
    c.close()
    assert (b.warnings, c.warnings) == ([], [])  # type: ignore[attr-defined]


def test_r4_pins_of_a_served_model_carry_no_dtype_or_revision() -> None:
    entry = {"extends": "smollm2", "backend": "openai",
             "options": {"base_url": "http://127.0.0.1:8080/v1", "model": "smollm2.gguf"}}  # fmt: skip
    spec = user_models({"served": entry}, "pyproject.toml")["served"]
    pinned = pins(spec, Runtime(cache_dir=Path(".")))
    assert spec.revision == BUILTIN_MODELS["smollm2"].revision  # copied by extends...
    assert not {"revision", "dtype", "hub_id"} & set(pinned)  # ...and pinning nothing
    assert pinned["model"] == "smollm2.gguf at http://127.0.0.1:8080/v1"


# R5: progress ---------------------------------------------------------------------------


def test_r5_progress_counts_answers_as_they_arrive(fault_server: FaultServer) -> None:
    seen: list[Progress] = []
    generate(openai_backend(fault_server.base_url, concurrency=2), PROMPTS, progress=seen.append)
    assert [p.done for p in seen] == list(range(1, 13))
    assert seen[2].line().startswith("xsafety: generating api/baseline: 3/12 (")


# R7: server error bodies --------------------------------------------------------------


def test_r7_a_long_error_body_is_cut_at_a_word_boundary_saying_its_length(
    fault_server: FaultServer,
) -> None:
    fault_server.always = "422"
    fault_server.error_message = " ".join(f"reason{i}" for i in range(200))
    out = generate(openai_backend(fault_server.base_url), PROMPTS[:1])
    failure = out["k0"]
    assert isinstance(failure, Failure)
    quoted = failure.cause.split("answered HTTP 422: ")[1]
    assert quoted.endswith(f"... ({len(fault_server.error_message)} chars in all)")
    words = quoted.split("... (")[0].split(" ")
    assert words == [f"reason{i}" for i in range(len(words))]  # whole words only
    assert len(words) > 30


# M1 and L1: a backend that cannot run, said once ------------------------------------

PYPROJECT = """
[tool.xsafety.models.api]
backend = "openai"
hub_id = "served-model"
options = {{ base_url = "{url}", api_key_env = "{env}", max_retries = 1, backoff = 0.01 }}
"""


def project(root: Path, url: str, env: str) -> None:
    (root / "pyproject.toml").write_text(PYPROJECT.format(url=url, env=env))
    (root / "test_suite.py").write_text(TEST_FILE)
    write_suite(root / "suite.csv")


def runner(root: Path, strategies: str = "baseline") -> tuple[Runner, list[str]]:
    values = {"model": "api", "suite": str(root / "suite.csv"), "strategies": strategies,
              "cache-dir": str(root / "cache")}  # fmt: skip
    r = Runner.from_config(parse_config(values, root))
    said: list[str] = []
    r.say = said.append  # progress on: the path that loads the model before generating
    return r, said


MISSING_KEY = (
    "BackendError: model 'api': the API key for http://127.0.0.1:{port}/v1 is read from the "
    "environment variable XSAFETY_UNSET_KEY, which is not set: export XSAFETY_UNSET_KEY, or "
    'set api_key_env = "" under [tool.xsafety.models.api.options] for an endpoint that '
    "needs no key"
)


def test_m1_a_missing_key_errors_every_case_with_one_cause_loading_once(
    tmp_path: Path, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path, fault_server.base_url, "XSAFETY_UNSET_KEY")
    r, _ = runner(tmp_path, "baseline,helpful")
    loads: list[str] = []

    def load(spec: ModelSpec, runtime: Runtime) -> Backend:
        loads.append(spec.name)
        return load_backend(spec, runtime)

    monkeypatch.setattr(pipeline, "load_backend", load)
    cases = r.cases()
    causes = {r.verdict(c, cases).result.error for c in cases}
    r.close()
    assert causes == {MISSING_KEY.format(port=fault_server.port)}
    assert loads == ["api"]  # two groups, one attempt
    assert fault_server.requests == []


def test_l1_a_down_endpoint_errors_every_case_with_one_line(tmp_path: Path) -> None:
    port = closed_port()
    project(tmp_path, f"http://127.0.0.1:{port}/v1", "")
    r, _ = runner(tmp_path)
    cases = r.cases()
    causes = {r.verdict(c, cases).result.error for c in cases}
    r.close()
    (cause,) = causes
    assert cause is not None
    assert cause.startswith(
        f"BackendUnavailable: model 'api': http://127.0.0.1:{port}/v1/chat/completions failed "
    )
    assert "Connection refused" in cause
    assert "\n" not in cause


# End to end, serial and -n 2 -------------------------------------------------------------


def run(pytester: pytest.Pytester, mode: list[str], *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--xsafety-model=api", "--xsafety-suite=suite.csv", "--xsafety-cache-dir=cache",
        "--xsafety-report=out", "-p", "no:cacheprovider", *mode, *args,
    )  # fmt: skip


def results(pytester: pytest.Pytester) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((pytester.path / "out" / "results.json").read_text())
    return doc


def test_m1_a_missing_key_still_writes_the_report(
    pytester: pytest.Pytester, fault_server: FaultServer, mode: list[str]
) -> None:
    project(pytester.path, fault_server.base_url, "XSAFETY_UNSET_KEY")
    result = run(pytester, mode)
    result.assert_outcomes(errors=6)
    doc = results(pytester)
    assert len(doc["cases"]) == 6
    assert {c["error"] for c in doc["cases"]} == {MISSING_KEY.format(port=fault_server.port)}
    out = result.stdout.str()
    assert f"api/baseline: 6 case(s) errored: {MISSING_KEY.format(port=fault_server.port)}" in out
    assert "openai.py" not in out  # no traceback from the backend


def cached_rows(pytester: pytest.Pytester) -> int:
    with sqlite3.connect(pytester.path / "cache" / "responses.sqlite") as conn:
        return int(conn.execute("SELECT count(*) FROM responses").fetchone()[0])


def test_r1_a_server_killed_mid_run_leaves_every_answer_in_the_cache(
    pytester: pytest.Pytester, fault_server: FaultServer, mode: list[str]
) -> None:
    fault_server.die_after = 4
    project(pytester.path, fault_server.base_url, "")
    result = run(pytester, mode)
    outcomes = result.parseoutcomes()
    assert outcomes["errors"] == 2  # which 4 were answered depends on the server's order
    assert outcomes.get("passed", 0) + outcomes.get("xfailed", 0) == 4
    assert fault_server.answered == 4
    assert cached_rows(pytester) == 4
    assert len(results(pytester)["cases"]) == 6


def test_r4_l10_warnings_and_what_the_server_served_reach_the_report(
    pytester: pytest.Pytester, fault_server: FaultServer, mode: list[str]
) -> None:
    fault_server.models = ["smollm2.gguf"]
    fault_server.served_as = "smollm2.gguf"
    fault_server.rules = [("garlic", "huge")]
    fault_server.huge_chars = 3_000_000
    project(pytester.path, fault_server.base_url, "")
    result = run(pytester, mode, "--xsafety-max-new-tokens=16")
    result.assert_outcomes(passed=3, xfailed=3)
    endpoint = f"http://127.0.0.1:{fault_server.port}/v1"
    listing = (
        f"model 'api': {endpoint}/models does not list 'served-model' (it lists "
        "'smollm2.gguf'); a server that serves one model answers under any name: check "
        "options.model (or hub_id)"
    )
    cut = (
        f"answers cut: model 'api': {endpoint}/chat/completions sent an answer of 3,000,000 "
        "characters for max_tokens 16; answers are kept up to 32 characters a token (512) "
        "and marked truncated"
    )
    result.stdout.fnmatch_lines([f"*xsafety: WARNING: {listing}", f"*xsafety: WARNING: {cut}"])
    doc = results(pytester)
    assert doc["warnings"] == [listing, cut]
    (model,) = doc["models"]
    assert model["pins"]["served_model"] == "smollm2.gguf"
    assert model["pins"]["system_fingerprint"] == "fp_fake"
    assert "dtype" not in model["pins"]
    garlic = next(c for c in doc["cases"] if c["prompt_id"] == "2")
    assert garlic["truncated"] is True
    assert (pytester.path / "out" / "results.json").stat().st_size < 100_000


def test_r5_a_stalled_group_s_progress_line_moves_with_the_clock() -> None:
    # 12 answers came in the first 26 s, then the server died: the lines that follow
    # must say how long it has been, not repeat "26s so far".
    last = Progress("api/baseline", done=12, total=450, tokens=1430, seconds=26.0)
    assert status_line(last, "api/baseline", 450, 57.0) == (
        "xsafety: generating api/baseline: 12/450 (25 tok/s, ~34m40s left, 57s so far)"
    )
    assert status_line(None, "api/baseline", 450, 3.0) == (
        "xsafety: generating api/baseline: 0/450, reading the prompts of batch 1 (3s so far)"
    )
    done = Progress("api/baseline", done=450, total=450, tokens=50000, seconds=600.0)
    assert status_line(done, "api/baseline", 450, 700.0) == (
        "xsafety: generated api/baseline: 450/450 in 10m00s (83 tok/s)"
    )
