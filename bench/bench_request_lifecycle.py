"""Cost of the request_lifecycle probes (and cpu_ops' update_from_output / process_outputs) on vLLM's
REAL Scheduler and OutputProcessor, driven with synthetic model outputs as vLLM's own scheduler
tests drive them: decode steps at batch 8 / 64 / 256, probes off and on, interleaved round by round
in one run so machine noise hits both alike (figures: medians over rounds).

Per step it times, with time.perf_counter_ns around vLLM's calls only (building the synthetic
ModelRunnerOutput is outside): EngineCore = schedule() + update_from_output(); API =
process_outputs(). Recording is on (rows reach the ring; the collector writes them).

    .venv/bin/python bench/bench_request_lifecycle.py [--rounds 9] [--steps 40]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import torch
from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
from vllm.sampling_params import RequestOutputKind, SamplingParams
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.engine import EngineCoreRequest
from vllm.v1.engine.output_processor import OutputProcessor
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.request import Request
from vllm.v1.structured_output import StructuredOutputManager

from profilemate import _core
from profilemate.hooks.watchdog import ModuleWatchdog
from profilemate.probes import load_category
from profilemate.probes.recorder import CoreRecorder
from profilemate.probes.registry import Registry

BLOCK = 16


def vllm_config(max_seqs: int) -> VllmConfig:
    from profilemate.demo.models import ensure_model

    sc = SchedulerConfig(
        max_num_seqs=max_seqs,
        max_num_batched_tokens=max(8192, max_seqs * 40),
        max_model_len=4096,
        is_encoder_decoder=False,
        enable_chunked_prefill=True,
    )
    mc = ModelConfig(model=str(ensure_model("dense")), dtype="float32", skip_tokenizer_init=True)
    cc = CacheConfig(block_size=BLOCK, cache_dtype="auto", enable_prefix_caching=False)
    return VllmConfig(scheduler_config=sc, model_config=mc, cache_config=cc)


class Engine:
    def __init__(self, batch: int) -> None:
        vc = vllm_config(batch)
        blocks = batch * 4096 // BLOCK + 1
        kv = KVCacheConfig(
            num_blocks=blocks,
            kv_cache_tensors=[],
            kv_cache_groups=[
                KVCacheGroupSpec(
                    ["layer"],
                    FullAttentionSpec(
                        block_size=BLOCK, num_kv_heads=1, head_size=1, dtype=torch.float32
                    ),
                )
            ],
        )
        vc.cache_config.num_gpu_blocks = blocks
        self.sched = Scheduler(
            vllm_config=vc,
            kv_cache_config=kv,
            log_stats=False,
            structured_output_manager=StructuredOutputManager(vc),
            block_size=BLOCK,
        )
        self.op = OutputProcessor(None, log_stats=False)
        sp = SamplingParams(
            max_tokens=4000, detokenize=False, ignore_eos=True, output_kind=RequestOutputKind.DELTA
        )
        for i in range(batch):
            ecr = EngineCoreRequest(
                request_id=f"req-{i}",
                prompt_token_ids=[5 + (i + j) % 50 for j in range(32)],
                mm_features=None,
                sampling_params=sp,
                pooling_params=None,
                arrival_time=time.time(),
                lora_request=None,
                cache_salt=None,
                data_parallel_rank=None,
                external_req_id=f"req-{i}",
            )
            self.op.add_request(ecr, None)
            self.sched.add_request(Request.from_engine_core_request(ecr, block_hasher=None))
        self.step()  # prefill: every request is in decode afterwards

    def step(self) -> tuple[int, int]:
        t0 = time.perf_counter_ns()
        so = self.sched.schedule()
        t1 = time.perf_counter_ns()
        ids = list(so.num_scheduled_tokens)
        mro = ModelRunnerOutput(
            req_ids=ids,
            req_id_to_index={r: i for i, r in enumerate(ids)},
            sampled_token_ids=[[11]] * len(ids),
            logprobs=None,
            prompt_logprobs_dict={},
            pooler_output=[],
        )
        t2 = time.perf_counter_ns()
        out = self.sched.update_from_output(so, mro)
        t3 = time.perf_counter_ns()
        for eco in out.values():
            self.op.process_outputs(eco.outputs, engine_core_timestamp=eco.timestamp)
        t4 = time.perf_counter_ns()
        return (t1 - t0) + (t3 - t2), t4 - t3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pm-bench-rl-")
    wd = ModuleWatchdog()
    wd.install()
    _core.start(tmp, "bench", flush_interval_ms=50)
    rl, cpu = load_category("request_lifecycle"), load_category("cpu_ops")
    targets = [*rl.TARGETS] + [
        t
        for t in cpu.TARGETS
        if t.operation in ("schedule", "update_from_output", "process_outputs")
    ]
    reg = Registry(targets, CoreRecorder(_core), watchdog=wd, vllm_version="0.32.0")
    print(f"{'batch':>5} {'EC off us':>10} {'EC on us':>10} {'EC ratio':>9} {'EC +us':>8} "
          f"{'API off us':>11} {'API on us':>10} {'API +us':>8}")  # fmt: skip
    try:
        for batch in (8, 64, 256):
            eng = Engine(batch)
            res = {False: ([], []), True: ([], [])}
            for r in range(args.rounds):
                for on in (False, True) if r % 2 == 0 else (True, False):
                    if on:
                        reg.activate()
                    ec = api = 0
                    for _ in range(args.steps):
                        a, b = eng.step()
                        ec += a
                        api += b
                    if on:
                        reg.deactivate()
                    res[on][0].append(ec / args.steps / 1e3)
                    res[on][1].append(api / args.steps / 1e3)
                    _core.flush()
            ec_off, ec_on = (statistics.median(res[k][0]) for k in (False, True))
            api_off, api_on = (statistics.median(res[k][1]) for k in (False, True))
            print(f"{batch:>5} {ec_off:>10.1f} {ec_on:>10.1f} {ec_on / ec_off:>9.3f} "
                  f"{ec_on - ec_off:>8.1f} {api_off:>11.1f} {api_on:>10.1f} "
                  f"{api_on - api_off:>8.1f}")  # fmt: skip
    finally:
        _core.stop()
        wd.uninstall()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
