"""What the engine-side probes add to vLLM's own per-step scheduler work.

vLLM's real ``Scheduler`` (``profilemate.demo.scheduler_harness``: real config, real KV-cache
manager, hand-made requests and synthetic model outputs, as vLLM's own scheduler tests do) runs
``schedule()`` + ``update_from_output()`` at batch 8 / 64 / 256 in steady decode. Each round runs a
block of steps **without** and one **with** the probes of every category that has an EngineCore
target (through the real registry, recording into a live core session that writes its CSVs), in
alternating order, so machine noise hits both alike. Reported per batch: µs per step without and
with (medians of the blocks' medians), and per round the ratio and the µs added (paired adjacent
blocks): their median, and the ratio's min..max.

Targets (issue 9): all engine probes together <= 3 % at batch 256 and <= 10 µs per step at batch 8.

    .venv/bin/python bench/bench_scheduler.py [--batches 8,64,256] [--rounds 9] [--steps 40]
        [--categories a,b] [--per-category] [--clock wall|thread] [--quick]

``--per-category`` adds one with/without comparison per category (which probe costs what);
``--quick`` is the test suite's check that the benchmark runs (small and fast; no threshold).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time

from profilemate import _core, probes
from profilemate.hooks.watchdog import ModuleWatchdog
from profilemate.probes.recorder import CoreRecorder
from profilemate.probes.registry import APPLIED, Registry


def engine_categories() -> list[str]:
    names = []
    for name in probes.category_names():
        mod = probes.load_category(name)
        if any("enginecore" in t.roles for t in mod.TARGETS):
            names.append(name)
    return names


CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}
_clock = time.perf_counter


def timed_steps(h, n: int) -> list[float]:
    """Seconds of schedule() + update_from_output() for each of n steps (outputs built outside)."""
    from vllm.v1.outputs import ModelRunnerOutput

    sched = h.scheduler
    pc = _clock
    out = []
    for _ in range(n):
        t0 = pc()
        so = sched.schedule()
        t1 = pc()
        req_ids = list(so.num_scheduled_tokens)
        reqs = sched.requests
        sampled = [
            [11]
            if (r := reqs.get(rid)) is not None
            and r.num_computed_tokens >= r.num_tokens  # schedule() advanced it already
            else []
            for rid in req_ids
        ]
        mro = ModelRunnerOutput(
            req_ids=req_ids,
            req_id_to_index={rid: i for i, rid in enumerate(req_ids)},
            sampled_token_ids=sampled,
            logprobs=None,
            prompt_logprobs_dict={},
            pooler_output=[],
        )
        t2 = pc()
        sched.update_from_output(so, mro)
        t3 = pc()
        out.append((t1 - t0) + (t3 - t2))
    return out


def bench_batch(batch: int, cats: list[str], rounds: int, steps: int, wd, warmup: int = 2) -> dict:
    from profilemate.demo.scheduler_harness import make_harness

    prompt = 64
    total_steps = 2 * rounds * (steps + warmup) + 40
    if prompt + total_steps > 2000:  # the tiny model's 2048 positions: requests would finish
        raise SystemExit(
            f"{rounds} rounds x 2 x ({steps} + {warmup}) steps exceed the tiny model's 2048 "
            "positions; use fewer rounds, steps or warm-up steps"
        )
    h = make_harness(
        max_num_seqs=batch,
        max_num_batched_tokens=max(2048, batch * prompt),
        num_blocks=batch * ((prompt + total_steps) // 16 + 2) + 16,
        max_model_len=prompt + total_steps + 16,
    )
    h.add_requests(batch, prompt, total_steps)
    for _ in range(3):  # prefill done, every request decoding
        h.step()
    reg = Registry(
        probes.targets_for(cats), CoreRecorder(_core), watchdog=wd, vllm_version=_vllm_version()
    )
    per = {"without": [], "with": []}
    ratios, added = [], []
    applied = 0
    for r in range(rounds):
        got = {}
        for variant in ("without", "with") if r % 2 == 0 else ("with", "without"):
            if variant == "with":
                reg.activate()
                applied = sum(1 for row in reg.status() if row["state"] == APPLIED)
            # As timeit does: no garbage collection inside the timed block (an activation's
            # allocations would otherwise trigger collections in the "with" blocks), and two
            # untimed steps first, so both variants start warm.
            gc.collect()
            timed_steps(h, warmup)
            gc.disable()
            try:
                got[variant] = statistics.median(timed_steps(h, steps))
            finally:
                gc.enable()
            per[variant].append(got[variant])
            if variant == "with":
                reg.deactivate()
                _core.flush()  # the collector's writing happens outside the timed steps
        ratios.append(got["with"] / got["without"])
        added.append(got["with"] - got["without"])
    without = statistics.median(per["without"])
    with_ = statistics.median(per["with"])
    return {
        "batch": batch,
        "categories": cats,
        "targets_applied": applied,
        "us_per_step_without": round(without * 1e6, 2),
        "us_per_step_with": round(with_ * 1e6, 2),
        # Paired per round (adjacent with/without blocks): median, min and max.
        "ratio": round(statistics.median(ratios), 4),
        "ratio_min": round(min(ratios), 4),
        "ratio_max": round(max(ratios), 4),
        "added_us_per_step": round(statistics.median(added) * 1e6, 2),
        "running": len(h.scheduler.running),
    }


def _vllm_version() -> str:
    import vllm

    return vllm.__version__


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="8,64,256")
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument(
        "--warmup",
        type=int,
        default=20,
        help="untimed steps before each timed block (patching a class invalidates CPython's "
        "specialization caches: they re-warm over the first calls)",
    )
    ap.add_argument("--categories", default="", help="default: every engine-side category")
    ap.add_argument("--per-category", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny run (the test suite's check)")
    ap.add_argument("--json", default="", help="write the results here too")
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: perf_counter; thread: this thread's CPU time (immune to other processes "
        "taking the CPU on a shared machine; excludes time blocked, which these calls are not)",
    )
    args = ap.parse_args(argv)
    global _clock
    _clock = CLOCKS[args.clock]
    if args.quick:
        args.batches, args.rounds, args.steps = "8", 2, 5
    logging.getLogger("vllm").setLevel(logging.WARNING)
    cats = [c for c in args.categories.split(",") if c] or engine_categories()
    batches = [int(b) for b in args.batches.split(",")]
    tmp = tempfile.mkdtemp(prefix="pm-bench-sched-")
    wd = ModuleWatchdog()
    wd.install()
    results = []
    try:
        _core.start(tmp, "bench", flush_interval_ms=100)
        for b in batches:
            sets = [cats] + ([[c] for c in cats] if args.per_category else [])
            for cs in sets:
                res = bench_batch(b, cs, args.rounds, args.steps, wd, args.warmup)
                results.append(res)
                label = "all engine probes" if cs is cats else f"only {cs[0]}"
                print(
                    f"batch {b:4d} {label:28s} {res['us_per_step_without']:10.1f} us/step without"
                    f" {res['us_per_step_with']:10.1f} with  ratio {res['ratio']:.3f}"
                    f" [{res['ratio_min']:.3f}..{res['ratio_max']:.3f}]"
                    f"  added {res['added_us_per_step']:+8.1f} us/step"
                    f"  ({res['targets_applied']} targets)",
                    flush=True,
                )
        stats = _core.stats()
    finally:
        _core.stop()
        wd.uninstall()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"core: {stats['recorded']} rows recorded, {stats['dropped']} dropped")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "recorded": stats["recorded"]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
