"""Strategy stage: each built-in's rendered messages, pinned for one fixed prompt."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_xsafety.core.records import ChatMessage
from pytest_xsafety.setup.models import BUILTIN_MODELS, LLAMA2_SYSTEM_PROMPT
from pytest_xsafety.setup.strategies import (
    BUILTIN_STRATEGIES,
    CONTEXTUAL_TEMPLATE,
    FEW_SHOT_EXEMPLARS,
    INTERACTIVE_FOLLOWUP,
    MISTRAL_GUARDRAIL,
    StrategyError,
    resolve_strategies,
    user_strategies,
)
from tests.helpers import SHARED

PROMPT = "How do I crush garlic quickly?"  # this project's own test prompt
LLAMA2 = BUILTIN_MODELS["llama2"]
GEMMA = BUILTIN_MODELS["gemma"]


def roles(conv: tuple[ChatMessage, ...]) -> list[str]:
    return [m.role for m in conv]


def test_baseline_is_the_prompt_alone() -> None:
    assert BUILTIN_STRATEGIES["baseline"].render(PROMPT, LLAMA2) == (ChatMessage("user", PROMPT),)


def test_system_prompt_strategies() -> None:
    default = BUILTIN_STRATEGIES["default-system"].render(PROMPT, LLAMA2)
    assert default == (ChatMessage("system", LLAMA2_SYSTEM_PROMPT), ChatMessage("user", PROMPT))
    helpful = BUILTIN_STRATEGIES["helpful"].render(PROMPT, LLAMA2)
    assert helpful[0] == ChatMessage("system", "You are a helpful assistant.")
    guard = BUILTIN_STRATEGIES["guardrail"].render(PROMPT, LLAMA2)
    assert guard == (ChatMessage("system", MISTRAL_GUARDRAIL), ChatMessage("user", PROMPT))
    assert MISTRAL_GUARDRAIL.startswith("Always assist with care, respect, and truth.")


def test_gemma_folds_system_text_into_the_first_user_turn() -> None:
    assert not GEMMA.system_role
    guard = BUILTIN_STRATEGIES["guardrail"].render(PROMPT, GEMMA)
    assert guard == (ChatMessage("user", f"{MISTRAL_GUARDRAIL}\n\n{PROMPT}"),)
    # With exemplars, the system text joins the first exemplar's user turn.
    both = replace(BUILTIN_STRATEGIES["few-shot"], system="Be brief.")
    conv = both.render(PROMPT, GEMMA)
    assert roles(conv) == ["user", "assistant"] * 3 + ["user"]
    assert conv[0].content == f"Be brief.\n\n{FEW_SHOT_EXEMPLARS[0][0]}"


def test_default_system_cannot_apply_to_a_model_without_one() -> None:
    with pytest.raises(StrategyError, match="'default-system' cannot apply to model 'gemma'"):
        BUILTIN_STRATEGIES["default-system"].check(GEMMA)
    BUILTIN_STRATEGIES["default-system"].check(LLAMA2)
    BUILTIN_STRATEGIES["default-system"].check(BUILTIN_MODELS["smollm2"])


def test_few_shot_puts_exemplar_turns_before_the_prompt() -> None:
    conv = BUILTIN_STRATEGIES["few-shot"].render(PROMPT, LLAMA2)
    assert roles(conv) == ["user", "assistant"] * 3 + ["user"]
    assert conv[-1] == ChatMessage("user", PROMPT)
    answers = [m.content for m in conv if m.role == "assistant"]
    assert answers[-1].startswith("I can't help with that.")  # the refused exemplar


def test_contextual_wraps_the_prompt() -> None:
    conv = BUILTIN_STRATEGIES["contextual"].render(PROMPT, LLAMA2)
    assert conv == (ChatMessage("user", CONTEXTUAL_TEMPLATE.replace("{prompt}", PROMPT)),)
    assert conv[0].content.endswith("Question: " + PROMPT)


def test_interactive_follow_up_keeps_the_first_turn() -> None:
    s = BUILTIN_STRATEGIES["interactive"]
    assert s.interactive
    assert not BUILTIN_STRATEGIES["baseline"].interactive
    first = s.render(PROMPT, LLAMA2)
    assert first == (ChatMessage("user", PROMPT),)
    second = s.follow_up(PROMPT, first, "I can't help with that.")
    assert roles(second) == ["user", "assistant", "user"]
    assert second[2].content == INTERACTIVE_FOLLOWUP.replace("{prompt}", PROMPT)


def test_strategy_text_does_not_depend_on_the_suite_label(xstest_csv: Path) -> None:
    # Render every XSTest prompt as its own row and as a row with the opposite label and
    # another type: render() is given only the text, and every message other than the
    # prompt itself is the same for every prompt.
    from pytest_xsafety.setup.suites import load_suite

    suite = load_suite(str(xstest_csv), xstest_csv.parent)
    for name in ("few-shot", "contextual", "interactive", "guardrail", "helpful"):
        s = BUILTIN_STRATEGIES[name]
        frames = set()
        for p in suite.prompts:
            conv = s.render(p.text, LLAMA2)
            flipped = replace(p, label="safe" if p.label == "unsafe" else "unsafe", type="x")
            assert s.render(flipped.text, LLAMA2) == conv
            frames.add(tuple(m.content.replace(p.text, "<P>") for m in conv))
        assert len(frames) == 1, name


def test_exemplars_are_not_xstest_prompts() -> None:
    csv = SHARED / "xstest_prompts.csv"
    if not csv.is_file():
        pytest.skip("XSTest copy not found")
    text = csv.read_text().lower()
    for user, _ in FEW_SHOT_EXEMPLARS:
        assert user.lower() not in text
        # No shared 5-word run with any XSTest prompt either.
        words = user.lower().replace("?", "").replace(".", "").split()
        for i in range(len(words) - 4):
            assert " ".join(words[i : i + 5]) not in text, words[i : i + 5]


def test_user_strategies_from_pyproject(tmp_path: Path) -> None:
    (tmp_path / "shots.json").write_text(
        json.dumps([{"user": "Is a tomato a fruit?", "assistant": "Botanically, yes."}])
    )
    source = str(tmp_path / "pyproject.toml")
    table = {
        "terse": {"system": "Answer in one sentence.", "template": "Q: {prompt}"},
        "shots": {"exemplars": "shots.json", "followup": "Please answer: {prompt}"},
        "mine-default": {"extends": "default-system", "description": "mine"},
    }
    got = user_strategies(table, source)
    assert got["terse"].render(PROMPT, LLAMA2) == (
        ChatMessage("system", "Answer in one sentence."),
        ChatMessage("user", "Q: " + PROMPT),
    )
    shots = got["shots"].render(PROMPT, LLAMA2)
    assert roles(shots) == ["user", "assistant", "user"]
    assert got["shots"].interactive
    assert got["mine-default"].render(PROMPT, LLAMA2)[0].content == LLAMA2_SYSTEM_PROMPT


DEPLOYMENT = "You are a cautious assistant for a bank. Refuse anything risky."


def test_extends_composes_a_deployment_with_mitigations(tmp_path: Path) -> None:
    # The deployment's system text is written once; the mitigations build on it,
    # and a built-in listed after it adds its exemplars or its frame.
    table = {
        "fewshot-on-top": {"extends": ["deployment", "few-shot"]},
        "deployment": {"system": DEPLOYMENT},
        "contextual-on-top": {"extends": ["deployment", "contextual"]},
        "terse-on-top": {"extends": "deployment", "template": "Briefly: {prompt}"},
        "chained": {"extends": ["fewshot-on-top", "interactive"]},
    }
    got = user_strategies(table, str(tmp_path / "pyproject.toml"))
    shots = got["fewshot-on-top"].render(PROMPT, LLAMA2)
    assert shots[1:] == BUILTIN_STRATEGIES["few-shot"].render(PROMPT, LLAMA2)
    assert shots[0] == ChatMessage("system", DEPLOYMENT)
    framed = got["contextual-on-top"].render(PROMPT, LLAMA2)
    assert framed == (
        ChatMessage("system", DEPLOYMENT),
        ChatMessage("user", CONTEXTUAL_TEMPLATE.replace("{prompt}", PROMPT)),
    )
    assert got["terse-on-top"].render(PROMPT, LLAMA2) == (
        ChatMessage("system", DEPLOYMENT),
        ChatMessage("user", "Briefly: " + PROMPT),
    )
    chained = got["chained"]
    assert chained.interactive
    assert chained.exemplars == FEW_SHOT_EXEMPLARS
    assert chained.system == DEPLOYMENT
    # Composition gives the same messages (so the same cache keys and snapshots) as
    # writing the text out again.
    copied = user_strategies(
        {"copy": {"extends": "few-shot", "system": DEPLOYMENT}}, str(tmp_path / "p.toml")
    )["copy"]
    assert copied.fingerprint() == got["fewshot-on-top"].fingerprint()


def test_a_strategy_can_refine_the_built_in_of_its_own_name(tmp_path: Path) -> None:
    table = {"few-shot": {"extends": "few-shot", "system": "Be brief."}}
    got = user_strategies(table, str(tmp_path / "pyproject.toml"))["few-shot"]
    assert got.exemplars == FEW_SHOT_EXEMPLARS
    assert got.system == "Be brief."


def test_the_entry_settles_what_its_parents_set_differently(tmp_path: Path) -> None:
    source = str(tmp_path / "pyproject.toml")
    both = {"extends": ["guardrail", "helpful"]}
    with pytest.raises(StrategyError, match="extends both 'guardrail' and 'helpful', which set "
                       "different system; set system in this table"):  # fmt: skip
        user_strategies({"both": both}, source)
    chosen = user_strategies({"both": {**both, "system": "Mine."}}, source)["both"]
    assert chosen.system == "Mine."
    # A model's default system prompt is a system text too.
    with pytest.raises(StrategyError, match="which set different system"):
        user_strategies({"x": {"extends": ["default-system", "helpful"]}}, source)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"a": {"extends": "b"}, "b": {"extends": "a"}}, r"strategies.b\]: extends 'a' makes a cycle: a -> b -> a"),
        ({"a": {"extends": "a"}}, r"strategies.a\]: extends 'a' makes a cycle: a -> a"),
        ({"a": {"extends": ["few-shot", "deploymnt"]}, "deployment": {}},
         r"strategies.a\]: extends unknown strategy 'deploymnt' \(did you mean 'deployment'\?\)"),
        ({"a": {"extends": []}}, r"strategies.a\]: extends must be a strategy name or a non-empty"),
        ({"a": {"extends": 3}}, r"strategies.a\]: extends must be a strategy name or a non-empty"),
    ],
)  # fmt: skip
def test_extends_errors(tmp_path: Path, table: dict[str, dict[str, object]], message: str) -> None:
    with pytest.raises(StrategyError, match=message) as info:
        user_strategies(table, str(tmp_path / "pyproject.toml"))
    assert "pyproject.toml: [tool.xsafety.strategies." in str(info.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"sytem": "x"}, r"unknown key 'sytem' \(did you mean 'system'\?\)"),
        ({"template": "no placeholder"}, "template must contain {prompt}"),
        ({"exemplars": "missing.json"}, "exemplars file .*missing.json not found"),
        ({"extends": "nope"}, "extends unknown strategy 'nope'"),
        ({"system": 3}, "system must be a string"),
    ],
)
def test_user_strategy_errors_name_file_key_and_fix(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    with pytest.raises(StrategyError, match=message) as info:
        user_strategies({"bad": entry}, str(tmp_path / "pyproject.toml"))
    assert "[tool.xsafety.strategies.bad]" in str(info.value)


def test_unknown_strategy_lists_known_ones() -> None:
    with pytest.raises(StrategyError, match="did you mean 'few-shot'.*known: baseline"):
        resolve_strategies(["fewshot"], BUILTIN_STRATEGIES)
