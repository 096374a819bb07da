"""Benchmark: the plugin's generation stage against a naive per-prompt loop.

Same model (SmolLM2-135M-Instruct, fp32, CPU), same prompts (XSTest, baseline
strategy), same greedy decoding and new-token limit. The naive loop calls
``generate`` once per prompt, as XSTest's own scripts and most evaluation
scripts do; the stage plans length-sorted batches and stops each sequence at
EOS. Both run in this one process, interleaved batch by batch so that other load
on the machine weighs on both alike; the script checks that both produce the
same responses and prints wall times, tokens/s and the ratio.

    python benchmarks/generation.py [--suite CSV] [--max-new-tokens 64]
        [--batch-size 32] [--limit N]

``--limit`` takes the first N prompts (quick look); the issue's figure is the
full suite.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pytest_xsafety.engine.backends import Generation, Runtime, load_backend
from pytest_xsafety.engine.batching import Failure, Request, plan_batches, run_batches
from pytest_xsafety.setup.models import BUILTIN_MODELS
from pytest_xsafety.setup.options import default_cache_dir
from pytest_xsafety.setup.strategies import BUILTIN_STRATEGIES
from pytest_xsafety.setup.suites import id_order, load_suite

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SUITE = REPO.parent / "shared" / "data" / "xstest" / "xstest_prompts.csv"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default=str(DEFAULT_SUITE))
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)

    spec = BUILTIN_MODELS["smollm2"]
    suite = load_suite(args.suite, default_cache_dir())
    prompts = suite.prompts[: args.limit] if args.limit else suite.prompts
    baseline = BUILTIN_STRATEGIES["baseline"]
    requests = [Request(p.id, baseline.render(p.text, spec), id_order(p.id)) for p in prompts]
    t0 = time.perf_counter()
    backend = load_backend(spec, Runtime(default_cache_dir(), device="cpu", threads=args.threads))
    print(f"model loaded in {time.perf_counter() - t0:.1f} s; {len(requests)} prompts, "
          f"{args.max_new_tokens} new tokens, {args.threads} threads")  # fmt: skip

    # Interleaved batch by batch (naive loop over a batch's prompts, then the stage on
    # that batch), so that other load on the machine weighs on both sides alike.
    naive: dict[str, Generation] = {}
    staged: dict[str, Generation | Failure] = {}
    naive_s = stage_s = 0.0
    plan = plan_batches(requests, args.batch_size)
    for i, batch in enumerate(plan, 1):
        t0 = time.perf_counter()
        for r in batch:
            naive[r.key] = backend.generate([r.conversation], args.max_new_tokens)[0]
        t1 = time.perf_counter()
        staged.update(
            run_batches(lambda: backend, "smollm2/baseline", [batch],
                        max_new_tokens=args.max_new_tokens)
        )  # fmt: skip
        t2 = time.perf_counter()
        naive_s += t1 - t0
        stage_s += t2 - t1
        print(f"  batch {i}/{len(plan)}: naive {naive_s:.0f} s, stage {stage_s:.0f} s so far",
              flush=True)  # fmt: skip

    differ = [k for k in naive if staged.get(k) != naive[k]]
    naive_tokens = sum(g.new_tokens for g in naive.values())
    rows = [
        ("naive loop (1 prompt per generate)", naive_s, naive_tokens),
        (f"generation stage (batch {args.batch_size}, length-sorted)", stage_s, naive_tokens),
    ]
    print()
    print(f"{'method':<44} {'wall s':>8} {'tok/s':>8} {'prompts/s':>10}")
    for name, secs, toks in rows:
        print(f"{name:<44} {secs:8.1f} {toks / secs:8.1f} {len(requests) / secs:10.2f}")
    print(f"speed-up: {naive_s / stage_s:.2f}x")
    print(f"responses that differ between the two: {len(differ)} of {len(requests)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
