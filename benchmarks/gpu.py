"""Benchmark: the hf backend (and vllm, when importable) on a GPU, Llama-2-7B's shape.

No weights are downloaded. The model is ``LlamaForCausalLM`` with Llama-2-7B's
config (hidden 4096, 32 layers, 32 heads, MLP 11008, 32000 ids), randomly
initialised with a fixed seed in bf16 and saved to ``/dev/shm`` (else a temporary
folder), then loaded by the hf backend from that path with the ``llama2``
registry entry's settings, like any model. Its tokenizer is built here: a
byte-level BPE trained on the suite's prompts (Llama-2's tokenizer is not
reachable offline), its vocabulary filled up to 32000 ids with plain filler
tokens ``<N>`` (never produced when encoding; decoded as text) so that every id
the model can emit decodes to distinct text, Llama-2's special tokens and its
chat template (``tests/seed_families.py``). Random weights make the texts
meaningless; speed and batch (in)dependence are what is measured.

Runs, all with the suite's prompts through the ``baseline`` strategy, greedy, the
batches planned as the plugin plans them (rendered length, then id):
1. the largest batch that fits: batch sizes from ``--default-batch``, doubled up
   to ``--max-batch`` (and the whole suite), each tried on the longest prompts
   until one runs out of memory;
2. the whole suite at that size and at ``--default-batch`` (default 32, the
   plugin's CPU default; its CUDA default, 512, holds XSTest's 450 prompts whole),
   interleaved chunk by chunk (a chunk = one large batch), so both see the same
   machine state;
3. ``--single`` prompts one at a time;
4. vllm on the whole suite, if vllm is importable.
It prints tokens/s, decode steps/s against the memory-bandwidth bound (weight
bytes / HBM bandwidth, ``--hbm-tbps``, default 4.8: H200 spec), and how many
responses differ between batch sizes.

    PYTHONPATH=. python benchmarks/gpu.py [--suite CSV] [--max-new-tokens 128]
        [--max-batch 512] [--default-batch 32] [--single 8] [--hbm-tbps 4.8] [--tiny]

``--tiny`` runs the same code with a tiny shape (2 layers, hidden 64), on the CPU
when there is no GPU: the check that the script works. Imports: torch,
transformers, tokenizers and the plugin's backend and generation modules (not
syrupy, gguf, pandas or pytest).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from pytest_xsafety.engine.backends import Backend, Generation, Runtime, load_backend
from pytest_xsafety.engine.batching import Request, plan_batches
from pytest_xsafety.setup.models import BUILTIN_MODELS, ModelSpec
from pytest_xsafety.setup.options import CPU_BATCH_SIZE
from pytest_xsafety.setup.strategies import BUILTIN_STRATEGIES
from tests.seed_families import LLAMA2_TEMPLATE

LLAMA2_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32}  # fmt: skip
TINY = {"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 4}  # fmt: skip
VOCAB = 32000
DEFAULT_BATCH = CPU_BATCH_SIZE  # the batch to compare with: the plugin's CPU default


def read_prompts(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        sys.exit(f"benchmarks/gpu.py: no suite at {path}; pass --suite PATH/xstest_prompts.csv")
    with path.open(newline="", encoding="utf-8") as f:
        return [(row["id"], row["prompt"]) for row in csv.DictReader(f)]


def scratch_dir(prefix: str, need_bytes: float) -> Path:
    """A fresh folder in ``/dev/shm`` (RAM: the 7B shape's 14 GB load fast from it) when
    it has ``need_bytes`` free, else in the temporary folder."""
    shm = Path("/dev/shm")
    roomy = shm.is_dir() and shutil.disk_usage(shm).free > need_bytes
    return Path(tempfile.mkdtemp(prefix=prefix, dir=shm if roomy else None))


def default_dtype(tiny: bool, device: str) -> str:
    """bf16, as the 7B models run; fp32 for the tiny shape on a CPU (no bf16 hardware)."""
    return "float32" if tiny and device == "cpu" else "bfloat16"


def build_tokenizer(texts: list[str]) -> Any:
    """Byte-level BPE trained on ``texts``, filled to 32000 ids, Llama-2's specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    transformers: Any = importlib.import_module("transformers")  # untyped library

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=VOCAB,
            special_tokens=["<unk>", "<s>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    trained = json.loads(tok.to_str())
    vocab: dict[str, int] = trained["model"]["vocab"]
    for i in range(len(vocab), VOCAB):
        vocab[f"<{i}>"] = i  # unreachable by merges: only decoded, never encoded
    trained["model"]["vocab"] = vocab
    full = Tokenizer.from_str(json.dumps(trained))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=full, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.chat_template = LLAMA2_TEMPLATE
    return tokenizer


def build_model(
    root: Path, shape: dict[str, int], device: str, dtype: str, texts: list[str]
) -> None:
    import torch

    transformers: Any = importlib.import_module("transformers")
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, max_position_embeddings=4096,
        rms_norm_eps=1e-5, **shape,
    )  # fmt: skip
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            model = transformers.LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(default)
    # Llama-2-chat's published sampling defaults: the backend must not apply them.
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=1, eos_token_id=2, do_sample=True, temperature=0.6, top_p=0.9
    )
    model.save_pretrained(root)
    build_tokenizer(texts).save_pretrained(root)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()


def is_oom(exc: BaseException) -> bool:
    return type(exc).__name__ in ("OutOfMemoryError", "MemoryError")


class Timer:
    """Runs batches on a backend and adds up wall time, tokens and decode steps."""

    def __init__(self, backend: Backend, max_new_tokens: int, sync: Any) -> None:
        self.backend, self.max_new_tokens, self.sync = backend, max_new_tokens, sync
        self.seconds = 0.0
        self.tokens = self.steps = 0

    def run(self, batch: tuple[Request, ...]) -> dict[str, Generation]:
        start = time.perf_counter()
        out = self.backend.generate([r.conversation for r in batch], self.max_new_tokens)
        self.sync()
        self.seconds += time.perf_counter() - start
        self.tokens += sum(g.new_tokens for g in out)
        self.steps += max(g.new_tokens for g in out)  # a batch decodes until its longest ends
        return {r.key: g for r, g in zip(batch, out, strict=True)}

    def line(self, label: str, bound_steps: float) -> str:
        tps = self.tokens / self.seconds
        sps = self.steps / self.seconds
        return (
            f"{label:<28} {self.seconds:8.1f} s {self.tokens:8d} tok {tps:9.0f} tok/s "
            f"{sps:7.1f} steps/s ({sps / bound_steps:5.1%} of the weight-bandwidth bound)"
        )


def differ(a: dict[str, Generation], b: dict[str, Generation]) -> str:
    keys = sorted(set(a) & set(b))
    n = sum(a[k].text != b[k].text for k in keys)
    return f"{n}/{len(keys)} responses differ"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--suite", type=Path, default=Path("../shared/data/xstest/xstest_prompts.csv")
    )
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--max-batch", type=int, default=512)
    parser.add_argument(
        "--default-batch", type=int, default=DEFAULT_BATCH, help="the batch to compare with"
    )
    parser.add_argument("--single", type=int, default=8, help="prompts run one at a time")
    parser.add_argument("--hbm-tbps", type=float, default=4.8, help="HBM bandwidth, TB/s")
    parser.add_argument("--dtype", help="default bfloat16 (float32 for --tiny on a CPU)")
    parser.add_argument("--tiny", action="store_true", help="a tiny shape: checks the script")
    parser.add_argument("--limit", type=int, help="only the first N prompts")
    args = parser.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    dtype = args.dtype or default_dtype(args.tiny, device)
    prompts = read_prompts(args.suite)[: args.limit]
    texts = [p for _, p in prompts]
    root = scratch_dir("xsafety-gpu-", 30e9)
    try:
        t0 = time.perf_counter()
        build_model(root, TINY if args.tiny else LLAMA2_7B, device, dtype, texts)
        built = time.perf_counter() - t0
        spec: ModelSpec = replace(BUILTIN_MODELS["llama2"], name="llama2-shape", path=str(root))
        spec = replace(spec, dtype=dtype, max_new_tokens=args.max_new_tokens)
        t0 = time.perf_counter()
        threads = 1 if args.tiny and device == "cpu" else None  # tiny matrices: one thread
        runtime = Runtime(cache_dir=root / "cache", device=device, threads=threads)
        backend = load_backend(spec, runtime)
        loaded = time.perf_counter() - t0
        info = backend.describe()
        model = getattr(backend, "model")  # noqa: B009 - the hf backend's torch module
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        bound = args.hbm_tbps * 1e12 / weight_bytes
        print(
            f"device {info['device']}, torch {info['torch']}, transformers {info['transformers']}, "
            f"dtype {info['dtype']}; {'tiny' if args.tiny else 'Llama-2-7B'} shape, "
            f"{weight_bytes / 1e9:.2f} GB of weights; built {built:.0f} s, loaded {loaded:.0f} s"
        )
        print(
            f"bound: {args.hbm_tbps} TB/s / {weight_bytes / 1e9:.2f} GB = {bound:.0f} decode "
            "steps/s (weights only; KV reads lower it)"
        )
        strategy = BUILTIN_STRATEGIES["baseline"]
        requests = [
            Request(pid, strategy.render(text, spec), (i, pid))
            for i, (pid, text) in enumerate(prompts)
        ]
        print(f"{len(requests)} prompts x {args.max_new_tokens} new tokens, greedy")
        Timer(backend, 4, sync).run(tuple(requests[:8]))  # warm-up: kernels, allocator

        # 1. The largest batch that fits, tried on the longest prompts.
        ordered = plan_batches(requests, len(requests))[0]
        default_batch = args.default_batch
        sizes, size = [], default_batch
        while size < min(args.max_batch, len(requests)):
            sizes.append(size)
            size *= 2
        sizes.append(min(args.max_batch, len(requests)))
        largest = sizes[0]
        for size in sizes:
            trial = Timer(backend, args.max_new_tokens, sync)
            try:
                trial.run(ordered[-size:])
            except Exception as exc:
                if not is_oom(exc):
                    raise
                print(f"batch {size}: out of memory")
                break
            largest = size
            peak = torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else 0.0
            print(trial.line(f"trial, batch {size}", bound) + f", peak {peak:.1f} GB")

        # 2. The whole suite at the default batch size and the largest, interleaved.
        big, small = (
            Timer(backend, args.max_new_tokens, sync),
            Timer(backend, args.max_new_tokens, sync),
        )
        at_big: dict[str, Generation] = {}
        at_small: dict[str, Generation] = {}
        for chunk in plan_batches(requests, largest):
            at_big.update(big.run(chunk))
            for batch in plan_batches(list(chunk), default_batch):
                at_small.update(small.run(batch))
        print(small.line(f"hf, batch {default_batch} (default)", bound))
        print(big.line(f"hf, batch {largest} (largest)", bound))
        ratio = (big.tokens / big.seconds) / (small.tokens / small.seconds)
        print(f"speed-up of batch {largest} over {default_batch}: {ratio:.2f}x")
        print(f"greedy output, batch {default_batch} vs {largest}: {differ(at_small, at_big)}")

        # 3. One prompt at a time.
        one = Timer(backend, args.max_new_tokens, sync)
        at_one: dict[str, Generation] = {}
        for r in requests[: args.single]:
            at_one.update(one.run((r,)))
        if at_one:
            print(one.line("hf, batch 1", bound))
            print(f"greedy output, batch 1 vs {default_batch}: {differ(at_one, at_small)}; "
                  f"batch 1 vs {largest}: {differ(at_one, at_big)}")  # fmt: skip
        backend.close()
        del backend, model
        if device == "cuda":
            torch.cuda.empty_cache()

        # 4. vllm, when installed.
        if importlib.util.find_spec("vllm") is None or device != "cuda":
            print("vllm: not importable here (or no GPU); skipped")
        else:
            vspec = replace(spec, backend="vllm", options={"max_model_len": "4096"})
            engine = load_backend(vspec, runtime)
            whole = Timer(engine, args.max_new_tokens, sync)
            at_vllm = whole.run(tuple(requests))
            print(whole.line("vllm, whole suite", bound))
            print(f"vllm vs hf batch {largest}: {differ(at_vllm, at_big)}")
            engine.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
