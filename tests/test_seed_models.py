"""The seed families (Llama-2, Gemma, Phi-3, Mistral, Command R+, GPT-4) through the
same path as every model, short of the real weights.

Each open-weights family is a tiny random model of its real architecture class with
a tokenizer that renders its documented chat format (``tests/seed_families.py``),
loaded through the registry entry's own settings with ``path`` pointing at it. The
expected prompts below are written from the model cards' documented formats, not
from the code under test. GPT-4 goes through the openai backend against the local
fake server of ``test_openai_backend.py``; Command R+'s vLLM entry through the
stand-in ``vllm`` module of ``test_vllm_backend.py``.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_xsafety.core.records import Conversation
from pytest_xsafety.engine.backends import BackendError, Runtime, load_backend, pins
from pytest_xsafety.engine.backends.hf import HFBackend
from pytest_xsafety.engine.cache import request_key
from pytest_xsafety.setup.models import BUILTIN_MODELS, LLAMA2_SYSTEM_PROMPT, ModelSpec, user_models
from pytest_xsafety.setup.strategies import (
    BUILTIN_STRATEGIES,
    CONTEXTUAL_TEMPLATE,
    FEW_SHOT_EXEMPLARS,
    INTERACTIVE_FOLLOWUP,
    MISTRAL_GUARDRAIL,
    StrategyError,
)
from tests.seed_families import FAMILIES, PHI3_FIRST_TEMPLATE, Family, build

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

P = "Name three birds that live in cities."
G = MISTRAL_GUARDRAIL
HELPFUL = "You are a helpful assistant."
ANSWER = "I cannot help with that."

# The rendered prompts for `baseline` and `guardrail`, from each model card.
DOCUMENTED: dict[str, dict[str, str]] = {
    "llama2": {
        "baseline": f"<s>[INST] {P} [/INST]",
        "guardrail": f"<s>[INST] <<SYS>>\n{G}\n<</SYS>>\n\n{P} [/INST]",
    },
    "gemma": {  # no system role: the guardrail is folded into the user turn
        "baseline": f"<bos><start_of_turn>user\n{P}<end_of_turn>\n<start_of_turn>model\n",
        "guardrail": f"<bos><start_of_turn>user\n{G}\n\n{P}<end_of_turn>\n<start_of_turn>model\n",
    },
    "phi3": {
        "baseline": f"<|user|>\n{P}<|end|>\n<|assistant|>\n",
        "guardrail": f"<|system|>\n{G}<|end|>\n<|user|>\n{P}<|end|>\n<|assistant|>\n",
    },
    "mistral": {  # no system role: folded
        "baseline": f"<s>[INST] {P} [/INST]",
        "guardrail": f"<s>[INST] {G}\n\n{P} [/INST]",
    },
    "command-r-plus": {
        "baseline": f"<BOS_TOKEN><|START_OF_TURN_TOKEN|><|USER_TOKEN|>{P}<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
        "guardrail": f"<BOS_TOKEN><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{G}<|END_OF_TURN_TOKEN|>"
        f"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{P}<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
    },
}

Turns = list[tuple[str, str]]


def _fold(system: str | None, turns: Turns, last: str) -> tuple[Turns, str]:
    if system is None:
        return turns, last
    if turns:
        return [(f"{system}\n\n{turns[0][0]}", turns[0][1]), *turns[1:]], last
    return turns, f"{system}\n\n{last}"


def llama2_format(system: str | None, turns: Turns, last: str) -> str:
    """``<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {answer} </s>``..."""
    users = [u for u, _ in turns] + [last]
    if system is not None:
        users[0] = f"<<SYS>>\n{system}\n<</SYS>>\n\n{users[0]}"
    done = "".join(
        f"<s>[INST] {u} [/INST] {a} </s>" for u, (_, a) in zip(users[:-1], turns, strict=True)
    )
    return done + f"<s>[INST] {users[-1]} [/INST]"


def gemma_format(system: str | None, turns: Turns, last: str) -> str:
    """``<bos><start_of_turn>user\\n{user}<end_of_turn>\\n<start_of_turn>model\\n``..."""
    turns, last = _fold(system, turns, last)
    done = "".join(
        f"<start_of_turn>user\n{u}<end_of_turn>\n<start_of_turn>model\n{a}<end_of_turn>\n"
        for u, a in turns
    )
    return f"<bos>{done}<start_of_turn>user\n{last}<end_of_turn>\n<start_of_turn>model\n"


def phi3_format(system: str | None, turns: Turns, last: str) -> str:
    """``<|system|>\\n{system}<|end|>\\n<|user|>\\n{user}<|end|>\\n<|assistant|>\\n``..."""
    head = f"<|system|>\n{system}<|end|>\n" if system is not None else ""
    done = "".join(f"<|user|>\n{u}<|end|>\n<|assistant|>\n{a}<|end|>\n" for u, a in turns)
    return f"{head}{done}<|user|>\n{last}<|end|>\n<|assistant|>\n"


def mistral_format(system: str | None, turns: Turns, last: str) -> str:
    """``<s>[INST] {user} [/INST]{answer}</s>[INST] {user} [/INST]``..."""
    turns, last = _fold(system, turns, last)
    done = "".join(f"[INST] {u} [/INST]{a}</s>" for u, a in turns)
    return f"<s>{done}[INST] {last} [/INST]"


def cohere_format(system: str | None, turns: Turns, last: str) -> str:
    """``<BOS_TOKEN><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{system}<|END_OF_TURN_TOKEN|>``..."""
    start, end = "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>"
    head = f"{start}<|SYSTEM_TOKEN|>{system}{end}" if system is not None else ""
    done = "".join(
        f"{start}<|USER_TOKEN|>{u}{end}{start}<|CHATBOT_TOKEN|>{a}{end}" for u, a in turns
    )
    return f"<BOS_TOKEN>{head}{done}{start}<|USER_TOKEN|>{last}{end}{start}<|CHATBOT_TOKEN|>"


FORMATS: dict[str, Callable[[str | None, Turns, str], str]] = {
    "llama2": llama2_format,
    "gemma": gemma_format,
    "phi3": phi3_format,
    "mistral": mistral_format,
    "command-r-plus": cohere_format,
}

# What each built-in strategy sends: (system text, exemplar turns, user turn).
SENT: dict[str, tuple[str | None, Turns, str]] = {
    "baseline": (None, [], P),
    "default-system": (LLAMA2_SYSTEM_PROMPT, [], P),
    "helpful": (HELPFUL, [], P),
    "guardrail": (G, [], P),
    "few-shot": (None, list(FEW_SHOT_EXEMPLARS), P),
    "contextual": (None, [], CONTEXTUAL_TEMPLATE.replace("{prompt}", P)),
    "interactive": (None, [], P),
}

_BUILT: dict[tuple[str, bool], Path] = {}


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    def get(name: str, untie: bool = False) -> Path:
        if (name, untie) not in _BUILT:
            root = tmp_path_factory.mktemp(f"{name}-{'untied' if untie else 'tied'}")
            _BUILT[name, untie] = build(FAMILIES[name], root / name, untie=untie)
        return _BUILT[name, untie]

    return get


def entry(name: str, path: Path, **settings: Any) -> ModelSpec:
    """The built-in entry's own settings, with ``path`` pointing at the tiny copy."""
    return user_models({name: {"extends": name, "path": str(path), **settings}}, "pp.toml")[name]


def runtime(tmp: Path, **kw: Any) -> Runtime:
    # One torch thread: tiny matrices gain nothing from more, and the CPU is shared.
    return Runtime(cache_dir=tmp / "cache", device="cpu", threads=1, **kw)


def load_hf(spec: ModelSpec, rt: Runtime) -> HFBackend:
    """The backend the registry's loader picks for the entry: the hf one, as for every model."""
    backend = load_backend(spec, rt)
    assert isinstance(backend, HFBackend)
    return backend


def greedy(model: Any, ids: list[int], steps: int) -> list[int]:
    """Reference greedy decoding: argmax of a full forward pass, step by step, no stopping."""
    seq = list(ids)
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([seq])).logits[0, -1]
            seq.append(int(torch.argmax(logits)))
    return seq[len(ids) :]


def prompt_ids(backend: HFBackend, conversation: Conversation) -> list[int]:
    ids = backend.tokenizer(backend.render(conversation), add_special_tokens=False)["input_ids"]
    return list(ids)


NAMES = list(FAMILIES)


@pytest.mark.parametrize("name", NAMES)
def test_renders_each_strategy_in_the_documented_format(
    name: str, family_dirs: Callable[[str], Path], tmp_path: Path
) -> None:
    spec = entry(name, family_dirs(name))
    assert spec.system_role == (name not in ("gemma", "mistral"))
    backend = load_hf(spec, runtime(tmp_path))
    fmt = FORMATS[name]
    for strategy_name, strategy in BUILTIN_STRATEGIES.items():
        if strategy_name == "default-system" and name != "llama2":
            with pytest.raises(StrategyError, match="no default_system_prompt"):
                strategy.check(spec)
            continue
        system, turns, last = SENT[strategy_name]
        first = strategy.render(P, spec)
        assert backend.render(first) == fmt(system, turns, last), strategy_name
        if strategy.interactive:
            second = strategy.follow_up(P, first, ANSWER)
            again = INTERACTIVE_FOLLOWUP.replace("{prompt}", P)
            assert backend.render(second) == fmt(None, [(P, ANSWER)], again)
    for strategy_name, text in DOCUMENTED[name].items():
        assert backend.render(BUILTIN_STRATEGIES[strategy_name].render(P, spec)) == text
    backend.close()


PROMPTS = ["Hi.", P, "How many legs does a spider have, and why does it need them all?"]


@pytest.mark.parametrize("name", NAMES)
def test_left_padding_greedy_and_batch_invariance(
    name: str, family_dirs: Callable[[str], Path], tmp_path: Path
) -> None:
    family = FAMILIES[name]
    # fp32: on a CPU, bf16 greedy output may change with the batch (docs: generation).
    backend = load_hf(entry(name, family_dirs(name)), runtime(tmp_path, dtype="float32"))
    tok = backend.tokenizer
    # Llama-2 and Mistral ship no pad token: the backend pads with EOS.
    assert tok.pad_token == (family.pad or family.eos)
    seen: list[dict[str, Any]] = []
    real_generate = backend.model.generate

    def spy(**kwargs: Any) -> Any:
        seen.append(kwargs)
        return real_generate(**kwargs)

    backend.model.generate = spy
    convs = [BUILTIN_STRATEGIES["baseline"].render(p, backend.spec) for p in PROMPTS]
    batch = backend.generate(convs, max_new_tokens=6)
    alone = [backend.generate([c], max_new_tokens=6)[0] for c in convs]
    assert batch == alone

    ids, mask = seen[0]["input_ids"], seen[0]["attention_mask"]
    lengths = [len(prompt_ids(backend, c)) for c in convs]
    width = max(lengths)
    assert ids.shape[1] == width
    bos = tok.convert_tokens_to_ids(family.bos)
    for row, n in enumerate(lengths):
        pad = width - n
        assert ids[row, :pad].tolist() == [tok.pad_token_id] * pad  # on the left
        assert mask[row].tolist() == [0] * pad + [1] * n
        real = ids[row, pad:].tolist()
        assert real == prompt_ids(backend, convs[row])
        # The template holds BOS where the family has one: never a second.
        assert real.count(bos) == (0 if name == "phi3" else 1)
    assert min(lengths) < width  # some row was padded

    # Greedy whatever the repo's generation_config says (Llama-2 ships do_sample,
    # temperature 0.6, top_p 0.9): a reference argmax loop gives the same tokens.
    eos = set(backend.eos)
    for conv, gen in zip(convs, batch, strict=True):
        ref = greedy(backend.model, prompt_ids(backend, conv), 6)
        stop = next((i for i, t in enumerate(ref) if t in eos), len(ref))
        assert gen.new_tokens == stop
        assert gen.text == tok.decode(ref[:stop], skip_special_tokens=True)
    backend.close()


STOPS = [(f.name, t) for f in FAMILIES.values() for t in f.end_of_turn]


@pytest.mark.parametrize(("name", "token"), STOPS, ids=[f"{n}-{t}" for n, t in STOPS])
def test_stops_on_each_end_of_turn_token(
    name: str, token: str, family_dirs: Callable[..., Path], tmp_path: Path
) -> None:
    """Make the tiny model emit ``token`` mid-answer; the backend must stop there."""
    source = family_dirs(name, untie=True)
    path = tmp_path / name
    shutil.copytree(source, path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tok = transformers.AutoTokenizer.from_pretrained(path)
    conv = BUILTIN_STRATEGIES["baseline"].render(P, entry(name, path))
    text = tok.apply_chat_template(
        [m.as_dict() for m in conv], add_generation_prompt=True, tokenize=False
    )
    ids = tok(text, add_special_tokens=False)["input_ids"]
    before = greedy(model, ids, 8)
    # The first token that differs from the one before it: give `token` a slightly
    # larger output row than it, so the model says `token` where it said that one.
    target = next((t for i, t in enumerate(before) if i >= 2 and t != before[i - 1]), before[2])
    end = tok.convert_tokens_to_ids(token)
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        head[end] = head[target] * 1.1
    model.save_pretrained(path)
    after = greedy(model, ids, 12)
    assert end in after
    at = after.index(end)

    backend = load_hf(entry(name, path), runtime(tmp_path, dtype="float32"))
    gen = backend.generate([conv], max_new_tokens=12)[0]
    assert (gen.new_tokens, gen.truncated) == (at, False)
    assert gen.text == tok.decode(after[:at], skip_special_tokens=True)
    assert token in backend.describe()["stop_tokens"].split(",")
    backend.close()


@pytest.mark.parametrize("name", NAMES)
def test_pins_and_cache_keys(name: str, family_dirs: Callable[[str], Path], tmp_path: Path) -> None:
    path = tmp_path / name
    shutil.copytree(family_dirs(name), path)
    spec = entry(name, path)
    rt = runtime(tmp_path)
    pinned = pins(spec, rt)
    builtin = BUILTIN_MODELS[name]
    assert pinned["backend"] == "hf"
    assert pinned["model"] == f"local:{path}"
    assert pinned["dtype"] == builtin.dtype == "bfloat16"
    assert pinned["system_role"] == str(builtin.system_role)
    assert pinned["weights"].startswith("local-files-sha256:")
    assert pinned["transformers"] == transformers.__version__

    backend = load_hf(spec, rt)  # the entry's own dtype, as a GPU runner loads it
    info = backend.describe()
    assert info["dtype"] == "bfloat16"
    assert str(backend.model.dtype) == "torch.bfloat16"
    assert info["weights"] == f"local:{path}"
    template = FAMILIES[name].template
    default = template if isinstance(template, str) else template["default"]
    assert info["chat_template_sha256"] == hashlib.sha256(default.encode()).hexdigest()
    backend.close()

    base, guard = (BUILTIN_STRATEGIES[s].render(P, spec) for s in ("baseline", "guardrail"))
    key = request_key(pinned, base, 64, 0)
    assert key == request_key(pins(spec, rt), base, 64, 0)  # stable
    assert len({key, request_key(pinned, guard, 64, 0), request_key(pinned, base, 65, 0)}) == 3
    # Another chat template in the same directory is another model: a new key.
    config = path / "tokenizer_config.json"
    for f in (config, *path.glob("*.jinja")):
        f.write_text(f.read_text().replace("[/INST]", "[/INST] ").replace("model\\n", "model"))
    assert pins(spec, rt)["weights"] != pinned["weights"]
    assert request_key(pins(spec, rt), base, 64, 0) != key


def test_template_that_rejects_or_drops_a_system_turn_fails_at_load(
    family_dirs: Callable[[str], Path], tmp_path: Path
) -> None:
    # Gemma's template raises on a system turn: an entry claiming a system role.
    with pytest.raises(BackendError, match=r"rejects a system turn .*system_role = false"):
        load_hf(entry("gemma", family_dirs("gemma"), system_role=True), runtime(tmp_path))
    # Phi-3-mini's first template dropped system turns without a word.
    spec = entry("phi3", family_dirs("phi3"), chat_template=PHI3_FIRST_TEMPLATE)
    with pytest.raises(BackendError, match=r"silently drops system turns.*system_role = false"):
        load_hf(spec, runtime(tmp_path))
    folded = entry(
        "phi3", family_dirs("phi3"), chat_template=PHI3_FIRST_TEMPLATE, system_role=False
    )
    backend = load_hf(folded, runtime(tmp_path))
    assert backend.render(BUILTIN_STRATEGIES["guardrail"].render(P, folded)) == (
        f"<s><|user|>\n{G}\n\n{P}<|end|>\n<|assistant|>\n"
    )
    backend.close()


def test_repo_generation_defaults_never_reach_greedy_decoding(tmp_path: Path) -> None:
    """A repo's repetition penalty (Qwen2.5 ships 1.05) would change greedy output."""
    llama = FAMILIES["llama2"]
    heavy = Family(**{**llama.__dict__, "sampling": {**llama.sampling, "repetition_penalty": 5.0}})
    path = build(heavy, tmp_path / "m")
    backend = load_hf(entry("llama2", path), runtime(tmp_path, dtype="float32"))
    conv = BUILTIN_STRATEGIES["baseline"].render(P, backend.spec)
    gen = backend.generate([conv], max_new_tokens=8)[0]
    ref = greedy(backend.model, prompt_ids(backend, conv), 8)
    stop = next((i for i, t in enumerate(ref) if t in set(backend.eos)), len(ref))
    assert len(set(ref[:stop])) < stop  # the plain argmax repeats a token: a penalty would bite
    assert gen.text == backend.tokenizer.decode(ref[:stop], skip_special_tokens=True)
    backend.close()


def test_gpt4_builtin_goes_through_the_openai_backend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("openai")
    from tests.fault_server import FaultServer, serve
    from tests.test_openai_backend import CANARY

    spec = BUILTIN_MODELS["gpt-4"]
    assert (spec.backend, spec.served_model) == ("openai", "gpt-4-0613")  # a dated snapshot
    assert spec.options == {"base_url": "https://api.openai.com/v1"}
    assert spec.system_role
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    with serve(FaultServer(models=["gpt-4-0613"])) as server:
        local = user_models(
            {"gpt-4": {"extends": "gpt-4", "options": {"base_url": server.base_url}}}, "pp"
        )["gpt-4"]
        backend = load_backend(local, runtime(tmp_path))
        convs = [BUILTIN_STRATEGIES[s].render(P, local) for s in ("baseline", "guardrail")]
        out = backend.generate(convs, max_new_tokens=4)
        backend.close()
    assert [g.text for g in out] == ["Sure: Name three birds"] * 2
    sent = sorted((r["messages"] for r in server.requests), key=len)
    assert sent == [
        [{"role": "user", "content": P}],
        [{"role": "system", "content": G}, {"role": "user", "content": P}],
    ]
    assert {r["model"] for r in server.requests} == {"gpt-4-0613"}
    assert {(r["temperature"], r["n"], r["max_tokens"]) for r in server.requests} == {(0, 1, 4)}
    assert server.auth == {f"Bearer {CANARY}"}  # the key came from OPENAI_API_KEY
    assert pins(local, runtime(tmp_path))["model"] == f"gpt-4-0613 at {server.base_url}"


def test_command_r_plus_vllm_entry_reaches_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_vllm_backend import FakeVLLM

    fake = FakeVLLM()
    monkeypatch.setitem(sys.modules, "vllm", fake)
    spec = BUILTIN_MODELS["command-r-plus-vllm"]
    base = BUILTIN_MODELS["command-r-plus"]
    backend = load_backend(spec, Runtime(cache_dir=Path("/nonexistent"), seed=5))
    assert fake.loaded == [
        {
            "model": base.hub_id,
            "revision": base.revision,
            "tokenizer_revision": base.revision,
            "dtype": "bfloat16",
            "tensor_parallel_size": 4,
            "seed": 5,
            "trust_remote_code": False,
            "max_model_len": 8192,
        }
    ]
    out = backend.generate([BUILTIN_STRATEGIES["guardrail"].render(P, spec)], max_new_tokens=3)
    assert out[0].text == "Name three birds"
    assert fake.chats[0]["messages"] == [
        [{"role": "system", "content": G}, {"role": "user", "content": P}]
    ]
    assert fake.chats[0]["params"] == {"temperature": 0.0, "top_p": 1.0, "n": 1, "max_tokens": 3}
