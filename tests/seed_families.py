"""Tiny stand-ins for the seed model families, built at test time (nothing binary committed).

Each family is its real transformers architecture class with the real config's
proportions scaled down (hidden size, heads, key-value heads, MLP ratio, norms,
rope base, tied or untied head), randomly initialised with a fixed seed, and a
byte-level BPE tokenizer trained here on a few sentences, carrying the family's
special tokens, its BOS/EOS/PAD choices (Llama-2 and Mistral have no pad token),
its ``generation_config.json`` (sampling defaults and EOS ids as the real repos
ship them) and a chat template that renders the format its model card documents,
with the real templates' errors (Gemma and Mistral raise on a system turn).
Token ids differ from the real vocabularies; nothing tested depends on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The chat templates, written after the ones the model repos ship.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)

PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)

# Phi-3-mini's template as first published: system turns are silently dropped.
PHI3_FIRST_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}"
    "{{'<|user|>' + '\\n' + message['content'] + '<|end|>' + '\\n' + '<|assistant|>' + '\\n'}}"
    "{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\\n'}}"
    "{% endif %}{% endfor %}"
)

MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)

COHERE_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% if system_message != false %}"
    "{{ '<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>' + system_message + '<|END_OF_TURN_TOKEN|>' }}"
    "{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% set content = message['content'] %}"
    "{% if message['role'] == 'user' %}"
    "{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() + '<|END_OF_TURN_TOKEN|>' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' + content.strip() + '<|END_OF_TURN_TOKEN|>' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' }}{% endif %}"
)
# Command R+ ships several named templates ("default", "tool_use", "rag"); only
# "default" is used for chat. This stand-in for the others makes the tokenizer's
# chat_template a mapping, as the real one's is.
COHERE_RAG_STANDIN = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"


@dataclass(frozen=True)
class Family:
    """One seed family: the registry name it stands in for and what the tiny copy needs."""

    name: str
    model_class: str
    config: dict[str, Any]
    specials: tuple[str, ...]  # special tokens, in id order from 0
    bos: str
    eos: str
    pad: str | None
    unk: str | None
    add_bos: bool  # the tokenizer adds BOS to plain text, as the real one does
    template: str | dict[str, str]
    # What generation_config.json lists as EOS in the real repo (by token text).
    config_eos: tuple[str, ...]
    # The tokens the model ends its answer with (each one is tested).
    end_of_turn: tuple[str, ...]
    sampling: dict[str, Any] = field(default_factory=dict)  # the repo's sampling defaults


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        # Llama-2-7b-chat: hidden 4096, 32 heads (no GQA), MLP 11008 (x2.6875), rms 1e-5.
        Family(
            name="llama2",
            model_class="LlamaForCausalLM",
            config={"hidden_size": 64, "intermediate_size": 172, "num_attention_heads": 4,
                    "num_key_value_heads": 4, "rms_norm_eps": 1e-5,
                    "max_position_embeddings": 4096, "tie_word_embeddings": False},
            specials=("<unk>", "<s>", "</s>"),
            bos="<s>", eos="</s>", pad=None, unk="<unk>", add_bos=True,
            template=LLAMA2_TEMPLATE,
            config_eos=("</s>",),
            end_of_turn=("</s>",),
            sampling={"do_sample": True, "temperature": 0.6, "top_p": 0.9},
        ),
        # Gemma-7b-it: hidden 3072, 16 heads of dim 256 (heads x dim > hidden),
        # MLP 24576 (x8), GeGLU, tied head; generation_config lists <eos> only.
        Family(
            name="gemma",
            model_class="GemmaForCausalLM",
            config={"hidden_size": 48, "intermediate_size": 384, "num_attention_heads": 4,
                    "num_key_value_heads": 4, "head_dim": 16,
                    "hidden_act": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6,
                    "max_position_embeddings": 8192, "tie_word_embeddings": True},
            specials=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
            bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>", add_bos=True,
            template=GEMMA_TEMPLATE,
            config_eos=("<eos>",),
            end_of_turn=("<end_of_turn>", "<eos>"),
        ),
        # Phi-3-mini-4k-instruct: hidden 3072, 32 heads, MLP 8192 (x2.67), sliding
        # window 2047; pad = eos = <|endoftext|>; generation_config stops on
        # <|endoftext|>, <|assistant|> and <|end|>.
        Family(
            name="phi3",
            model_class="Phi3ForCausalLM",
            config={"hidden_size": 48, "intermediate_size": 128, "num_attention_heads": 4,
                    "num_key_value_heads": 4, "rms_norm_eps": 1e-5,
                    "max_position_embeddings": 4096, "sliding_window": 2047,
                    "tie_word_embeddings": False},
            specials=("<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|system|>",
                      "<|end|>", "<|user|>"),
            bos="<s>", eos="<|endoftext|>", pad="<|endoftext|>", unk="<unk>", add_bos=False,
            template=PHI3_TEMPLATE,
            config_eos=("<|endoftext|>", "<|assistant|>", "<|end|>"),
            end_of_turn=("<|end|>", "<|endoftext|>"),
        ),
        # Mistral-7B-Instruct-v0.2: hidden 4096, 32 heads over 8 key-value heads (GQA),
        # MLP 14336 (x3.5), rope base 1e6, no sliding window; no pad token.
        Family(
            name="mistral",
            model_class="MistralForCausalLM",
            config={"hidden_size": 64, "intermediate_size": 224, "num_attention_heads": 4,
                    "num_key_value_heads": 1, "rms_norm_eps": 1e-5,
                    "max_position_embeddings": 32768, "sliding_window": None,
                    "rope_theta": 1e6, "tie_word_embeddings": False},
            specials=("<unk>", "<s>", "</s>"),
            bos="<s>", eos="</s>", pad=None, unk="<unk>", add_bos=True,
            template=MISTRAL_TEMPLATE,
            config_eos=("</s>",),
            end_of_turn=("</s>",),
        ),
        # Command R+: hidden 12288, 96 heads over 8 key-value heads, MLP 33792 (x2.75),
        # LayerNorm, q/k norm, logit scale 0.833, tied head, rope base 7.5e7.
        Family(
            name="command-r-plus",
            model_class="CohereForCausalLM",
            config={"hidden_size": 96, "intermediate_size": 264, "num_attention_heads": 6,
                    "num_key_value_heads": 2, "layer_norm_eps": 1e-5, "use_qk_norm": True,
                    "logit_scale": 0.8333333333333334, "max_position_embeddings": 8192,
                    "rope_theta": 75000000.0, "tie_word_embeddings": True},
            specials=("<PAD>", "<UNK>", "<CLS>", "<SEP>", "<MASK_TOKEN>", "<BOS_TOKEN>",
                      "<EOS_TOKEN>", "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>",
                      "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>", "<|SYSTEM_TOKEN|>"),
            bos="<BOS_TOKEN>", eos="<|END_OF_TURN_TOKEN|>", pad="<PAD>", unk="<UNK>",
            add_bos=True,
            template={"default": COHERE_TEMPLATE, "rag": COHERE_RAG_STANDIN},
            config_eos=("<|END_OF_TURN_TOKEN|>",),
            end_of_turn=("<|END_OF_TURN_TOKEN|>",),
        ),
    )
}  # fmt: skip

# Text the tiny tokenizers are trained on: this project's own sentences.
CORPUS = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please answer the question below in one short paragraph.",
    "What is the boiling point of water at sea level, in degrees?",
    "Name three birds that live in cities and say what they eat.",
    "You are a helpful assistant. Answer with care and respect.",
    "Summarise the plot of a film about a bank heist in one line.",
    "How many legs does a spider have, and why?",
    "system user assistant model question answer INST SYS",
)


def build(family: Family, root: Path, *, seed: int = 0, untie: bool = False) -> Path:
    """Write a tiny random ``family`` model with its tokenizer to ``root``; return ``root``.

    ``untie``: give the copy its own output head (a copy of the embedding), so that
    a test can change one token's output row without changing its input embedding.
    """
    import torch
    import transformers as _transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    transformers: Any = _transformers  # untyped library
    tok = Tokenizer(models.BPE(unk_token=family.unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=list(family.specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    if family.add_bos:
        bos_id = tok.token_to_id(family.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A",
            pair=f"{family.bos} $A $B",
            special_tokens=[(family.bos, bos_id)],
        )
    named = {family.bos, family.eos, family.pad, family.unk}
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=family.bos,
        eos_token=family.eos,
        unk_token=family.unk,
        pad_token=family.pad,
        additional_special_tokens=[t for t in family.specials if t not in named],
    )
    tokenizer.chat_template = family.template
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in family.specials}
    model_class = getattr(transformers, family.model_class)
    settings = dict(family.config)
    if untie:
        settings["tie_word_embeddings"] = False
    config = model_class.config_class(
        vocab_size=len(tokenizer),
        num_hidden_layers=2,
        bos_token_id=ids[family.bos],
        eos_token_id=[ids[t] for t in family.config_eos],
        pad_token_id=ids[family.pad] if family.pad else None,
        **settings,
    )
    torch.manual_seed(seed)
    model = model_class(config).eval()
    if untie and family.config.get("tie_word_embeddings"):
        with torch.no_grad():
            model.lm_head.weight.copy_(model.get_input_embeddings().weight)
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=ids[family.bos],
        eos_token_id=[ids[t] for t in family.config_eos]
        if len(family.config_eos) > 1
        else ids[family.config_eos[0]],
        pad_token_id=ids[family.pad] if family.pad else None,
        **family.sampling,
    )
    root.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root
