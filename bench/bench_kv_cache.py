"""Cost of the kv_cache probes on vLLM's REAL Scheduler (no model: synthetic outputs, as vLLM's own
scheduler tests do), at batch sizes 8 / 64 / 256, in one run.

Per step it times ``schedule()`` + ``update_from_output()`` (the model-output construction is
outside the timed region) with the kv_cache category's targets applied through the registry and
recording on, and with them removed, interleaved round by round so machine noise hits both alike.
The workload keeps the batch full: prompts of 96 tokens whose first 64 are shared (prefix hits),
32 generated tokens each, a finished request replaced at once, block size 16 and a pool two blocks
per request larger than the running batch needs, so finished requests' blocks are cached, reused
and evicted all the time (the per-block paths run: allocation, release, touch, eviction rows).

    .venv/bin/python bench/bench_kv_cache.py [--rounds 7] [--steps 300] [--batches 8 64 256]

Prints, per batch size: median µs/step without and with the probes, the added µs/step, the ratio,
and the eviction rows of one probed round, warm-up included (median: the per-block path really ran).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time

from profilemate import _core
from profilemate.hooks.watchdog import ModuleWatchdog
from profilemate.probes import load_category
from profilemate.probes.recorder import CoreRecorder
from profilemate.probes.registry import Registry

BS = 16
PROMPT, SHARED, GEN = 96, 64, 32


def make_scheduler(model_dir: str, batch: int):
    import torch
    from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.structured_output import StructuredOutputManager

    per_req = -(-(PROMPT + GEN) // BS)
    num_blocks = batch * (per_req + 2) + 1
    sc = SchedulerConfig(
        max_num_seqs=batch,
        max_num_batched_tokens=max(2048, batch * 4),
        max_model_len=PROMPT + GEN + BS,
        enable_chunked_prefill=True,
        is_encoder_decoder=False,
    )
    mc = ModelConfig(model=model_dir, dtype="float32", seed=0, skip_tokenizer_init=True)
    cc = CacheConfig(block_size=BS, enable_prefix_caching=True)
    vc = VllmConfig(scheduler_config=sc, model_config=mc, cache_config=cc)
    spec = FullAttentionSpec(block_size=BS, num_kv_heads=1, head_size=1, dtype=torch.float32)
    kvc = KVCacheConfig(
        num_blocks=num_blocks,
        kv_cache_tensors=[],
        kv_cache_groups=[KVCacheGroupSpec(["layer"], spec)],
    )
    cc.num_gpu_blocks = num_blocks
    return Scheduler(
        vllm_config=vc,
        kv_cache_config=kvc,
        structured_output_manager=StructuredOutputManager(vc),
        block_size=BS,
        log_stats=False,  # the offline LLM's default
    )


class Feeder:
    def __init__(self, seed: int) -> None:
        from vllm.utils.hashing import sha256
        from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash

        init_none_hash(sha256)
        self.hasher = get_request_block_hasher(BS, sha256)
        self.rng = random.Random(seed)
        self.prefix = [self.rng.randrange(10, 1000) for _ in range(SHARED)]
        self.n = 0

    def request(self):
        from vllm.sampling_params import SamplingParams
        from vllm.v1.request import Request

        own = [self.rng.randrange(10, 1000) for _ in range(PROMPT - SHARED)]
        self.n += 1
        params = SamplingParams(max_tokens=GEN, ignore_eos=True)
        return Request(f"q{self.n}", self.prefix + own, params, None, block_hasher=self.hasher)


def model_output(s, out):
    from vllm.v1.outputs import ModelRunnerOutput

    ids = list(out.num_scheduled_tokens)
    reqs = s.requests
    sampled = [[7] if reqs[r].num_computed_tokens >= reqs[r].num_tokens else [] for r in ids]
    return ModelRunnerOutput(
        req_ids=ids, req_id_to_index={r: i for i, r in enumerate(ids)}, sampled_token_ids=sampled
    )


def steps(s, feeder: Feeder, batch: int, n: int) -> float:
    """Runs n steps keeping `batch` requests in flight; returns the seconds schedule() +
    update_from_output() took."""
    spent = 0.0
    clock = time.perf_counter
    for _ in range(n):
        while len(s.running) + len(s.waiting) < batch:
            s.add_request(feeder.request())
        t0 = clock()
        out = s.schedule()
        t1 = clock()
        mro = model_output(s, out)
        t2 = clock()
        s.update_from_output(out, mro)
        spent += (t1 - t0) + (clock() - t2)
    return spent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 64, 256])
    args = ap.parse_args()

    import logging

    logging.getLogger("vllm").setLevel(logging.ERROR)
    from profilemate.demo.models import ensure_model

    model_dir = str(ensure_model("dense"))  # only its config.json is read
    kv = load_category("kv_cache")
    tmp = tempfile.mkdtemp(prefix="pm-bench-kv-")
    _core.start(tmp, "bench", ring_capacity=1 << 20, trace=False)
    recorder = CoreRecorder(_core)
    wd = ModuleWatchdog()
    wd.install()
    try:
        print(
            f"{'batch':>5} {'off us/step':>12} {'on us/step':>11} {'added us':>9} {'ratio':>6} "
            f"{'evictions/round':>15}"
        )
        for batch in args.batches:
            off, on, evicted = [], [], []
            for r in range(args.rounds):
                for probed in (False, True) if r % 2 == 0 else (True, False):
                    reg = None
                    if probed:
                        reg = Registry(kv.TARGETS, recorder, watchdog=wd, vllm_version="0.32.0")
                        reg.activate()
                    try:
                        s = make_scheduler(model_dir, batch)
                        feeder = Feeder(r)
                        steps(s, feeder, batch, args.warmup)
                        spent = steps(s, feeder, batch, args.steps)
                    finally:
                        if reg is not None:
                            reg.deactivate()
                    (on if probed else off).append(spent / args.steps * 1e6)
                    if probed:  # the category's clock for this scheduler's pool
                        evicted.append(kv._STATES[recorder].clock.evicted)
            f_off, f_on = statistics.median(off), statistics.median(on)
            print(
                f"{batch:>5} {f_off:>12.1f} {f_on:>11.1f} {f_on - f_off:>9.1f} "
                f"{f_on / f_off:>6.3f} {statistics.median(evicted):>15.0f}"
            )
    finally:
        wd.uninstall()
        _core.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
