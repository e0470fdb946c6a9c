"""What the MoE counter (``torch.ops.profilemate.moe_count``) adds to a router call, on CPU.

The "router" is a gate projection + softmax + top-k, as vLLM's CPU router computes it for a batch
of ``tokens`` (hidden 128 for the tiny fixture's shape, or the size given). Each round times a
block of calls **without** and one **with** the op (order alternating), in eager mode and compiled
with ``torch.compile(fullgraph=True)`` (vLLM's CPU default compiles the router into the model
graph). Eager calls the op's body directly, as the probe's capture_fn does outside Dynamo.
Reported: µs per call without / with (medians of the blocks), and the paired per-round ratio
(median, min..max). This is the op's cost against one router, not against a whole MoE layer
(whose expert GEMMs make the layer much longer): an upper bound of its share.

    .venv/bin/python bench/bench_moe_count.py [--tokens 1,256] [--experts 8] [--top-k 2]
        [--rounds 15] [--calls 200]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import torch

from profilemate.probes import moe_count


def make(tokens: int, experts: int, top_k: int, hidden: int, count: bool, compiled: bool):
    buf, gate = moe_count.buffers(1, experts, "cpu")
    weight = torch.randn(experts, hidden)
    x = torch.randn(tokens, hidden)
    # what the probe's capture_fn runs: the op when traced, the op's body when run as Python
    op = torch.ops.profilemate.moe_count.default if compiled else moe_count._count

    def router(h):
        logits = h @ weight.t()
        probs = torch.softmax(logits, dim=-1)
        w, ids = torch.topk(probs, top_k, dim=-1)
        if count:
            op(buf, ids, gate, 0, experts, None)
        return w, ids

    fn = torch.compile(router, fullgraph=True, dynamic=False) if compiled else router
    fn(x)  # compile / warm up
    return lambda: fn(x)


def block(call, n: int) -> float:
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            call()
        return (time.perf_counter_ns() - t0) / n / 1e3
    finally:
        gc.enable()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="1,256")
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for mode in ("eager", "compiled"):
        for tokens in (int(t) for t in args.tokens.split(",")):
            base = make(tokens, args.experts, args.top_k, args.hidden, False, mode == "compiled")
            withop = make(tokens, args.experts, args.top_k, args.hidden, True, mode == "compiled")
            a, b, ratios = [], [], []
            for i in range(args.rounds):
                block(base, 10)
                block(withop, 10)
                if i % 2 == 0:
                    x, y = block(base, args.calls), block(withop, args.calls)
                else:
                    y, x = block(withop, args.calls), block(base, args.calls)
                a.append(x)
                b.append(y)
                ratios.append(y / x)
            print(
                f"{mode:8s} tokens {tokens:4d} E {args.experts} top-{args.top_k}: "
                f"router {statistics.median(a):8.1f} us, with op {statistics.median(b):8.1f} us, "
                f"+{statistics.median(b) - statistics.median(a):6.1f} us, ratio median "
                f"{statistics.median(ratios):.3f} ({min(ratios):.3f}..{max(ratios):.3f})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
