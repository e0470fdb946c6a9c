"""What the worker-side probes (forward_timing, cuda_graphs, encoder_timing) add to a V1 model step.

What runs, exactly (vLLM 0.32.0, CPU build, no model loaded):

- **Real vLLM code**: ``GPUModelRunner._determine_batch_execution_and_padding`` (with vLLM's real
  ``CudagraphDispatcher`` built from a real ``VllmConfig``), ``GPUModelRunner._model_forward``,
  ``GPUModelRunner._execute_mm_encoder`` (text-only steps: it returns ``[]``, as for a multimodal
  model on a step without images), ``set_forward_context`` with a real ``BatchDescriptor``, and --
  in the ``graph`` scenario -- vLLM's real ``CUDAGraphWrapper`` (FULL) around the model. The
  ``SchedulerOutput`` is a real one with 1 / 256 requests in steady decode, made by vLLM's real
  ``Scheduler`` (``profilemate.demo.scheduler_harness``) and stamped with its step.
- **Stand-ins**: the runner is ``GPUModelRunner.__new__`` with only the attributes those methods
  read (config, dispatcher, an ``input_batch`` holding ``lora_id_to_lora_request``); the model is a
  trivial callable; ``GPUModelRunner.execute_model`` is replaced, for the run only, by a short body
  that calls the real methods above in vLLM's order (the real one needs a loaded model, a KV cache
  and attention metadata); in ``graph`` the one CUDA call is faked: ``torch.cuda.CUDAGraph`` /
  ``torch.cuda.graph`` (one capture at set-up, then every step replays a graph whose ``replay()``
  does nothing) and the platform's graph pool handle.
- **The probes are the real ones**: the three categories' ``TARGETS`` and hooks factories, applied
  by the real ``Registry`` (``activate`` / ``deactivate``), recording into a live core session that
  writes its CSVs (the collector's writing is flushed outside the timed steps).

Scenarios: ``eager`` (mode NONE: what the CPU build runs; the eager reason is computed every step)
and ``graph`` (FULL replay of a captured descriptor: the GPU's steady decode; the hook also writes a
``cuda_graph_usage`` row). Not measured: device events (no GPU here; ``forward_timing`` records none
without CUDA), so a GPU step adds the event pool's two event records on top of these figures.

Each round runs a block of steps **without** and one **with** the probes, in alternating order
(paired A/B). Before every timed block: a garbage collection, then ``--warmup`` untimed steps
(default 50; patching or unpatching a class invalidates CPython's specialization caches of every
caller, so the first calls after ``activate`` / ``deactivate`` are slow and must not be timed), and
no garbage collection inside the block (as timeit does). A block's figure is the median of its
steps; ``--clock thread`` times with this thread's CPU clock (immune to other processes taking the
CPU on a shared machine; the calls timed never block). Reported per batch and scenario: µs per step
without / with (medians of the blocks' figures), the per-round paired difference (µs added)
and ratio: median with min..max, and the best blocks' figures (the fastest block of each variant,
as timeit reports: on a shared machine, contention only ever adds time) and their difference.

Target (issue 10): <= 5 µs of host time per step with recording on.

    .venv/bin/python bench/bench_worker_probes.py [--batches 1,256] [--scenarios eager,graph]
        [--rounds 31] [--steps 200] [--warmup 50] [--clock wall|thread] [--categories a,b]
        [--per-category] [--quick] [--json FILE]

``--quick`` is the test suite's check that the benchmark runs (small and fast; no threshold).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
import types

from profilemate import _core, probes
from profilemate.hooks.watchdog import ModuleWatchdog
from profilemate.probes import steps as pm_steps
from profilemate.probes.recorder import CoreRecorder
from profilemate.probes.registry import APPLIED, Registry

WORKER_CATEGORIES = ("forward_timing", "cuda_graphs", "encoder_timing")


class _FakeGraph:
    """Stands in for torch.cuda.CUDAGraph (no GPU): replay() does nothing."""

    def replay(self) -> None:
        pass


@contextlib.contextmanager
def _fake_graph_capture(graph, pool=None, stream=None):  # torch.cuda.graph's signature
    yield


def _steady_decode_output(batch: int):
    """A real SchedulerOutput of vLLM's Scheduler with ``batch`` requests all decoding, stamped."""
    from profilemate.demo.scheduler_harness import make_harness

    h = make_harness(
        max_num_seqs=batch,
        max_num_batched_tokens=max(2048, batch * 16),
        num_blocks=batch * 8 + 16,
        max_model_len=128,
    )
    h.add_requests(batch, 16, 64)
    for _ in range(3):  # prefill done: every request decoding
        h.step()
    so = h.scheduler.schedule()
    pm_steps.schedule_after(so, h.scheduler)  # what the engine's schedule probe stamps
    assert len(so.num_scheduled_tokens) == batch and so.total_num_scheduled_tokens == batch
    return so, h.scheduler.vllm_config


def _bench_execute_model(self, scheduler_output, intermediate_tensors=None):
    """Stand-in body of GPUModelRunner.execute_model: the real methods the probes wrap, in vLLM's
    order (v1/worker/gpu_model_runner.py: execute_model -> _preprocess/_execute_mm_encoder ->
    _determine_batch_execution_and_padding -> set_forward_context -> _model_forward)."""
    from vllm.forward_context import set_forward_context

    np_tokens, max_tokens = self._bench_np
    num_reqs = len(scheduler_output.num_scheduled_tokens)
    num_tokens = scheduler_output.total_num_scheduled_tokens
    mode, desc, _, across_dp, _ = self._determine_batch_execution_and_padding(
        num_tokens=num_tokens,
        num_reqs=num_reqs,
        num_scheduled_tokens_np=np_tokens,
        max_num_scheduled_tokens=max_tokens,
        use_cascade_attn=False,
        num_encoder_reqs=len(scheduler_output.scheduled_encoder_inputs),
        allow_microbatching=False,
    )
    self._execute_mm_encoder(scheduler_output)
    with set_forward_context(
        None,
        self.vllm_config,
        num_tokens=desc.num_tokens,
        num_tokens_across_dp=across_dp,
        cudagraph_runtime_mode=mode,
        batch_descriptor=desc,
    ):
        return self._model_forward(input_ids=None, positions=None)


def _make_runner(vllm_config, scenario: str, batch: int, so):
    import numpy as np
    from vllm.config import CUDAGraphMode
    from vllm.config.compilation import CompilationMode
    from vllm.v1.cudagraph_dispatcher import CudagraphDispatcher
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    cc = vllm_config.compilation_config
    if scenario == "graph":  # a GPU-style configuration (the CPU platform forces NONE at init)
        cc.mode = CompilationMode.VLLM_COMPILE
        cc.cudagraph_mode = CUDAGraphMode.FULL
        cc.cudagraph_capture_sizes = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, batch})
        cc.max_cudagraph_capture_size = max(cc.cudagraph_capture_sizes)
    runner = GPUModelRunner.__new__(GPUModelRunner)
    runner.vllm_config = vllm_config
    runner.model_config = vllm_config.model_config
    runner.parallel_config = vllm_config.parallel_config
    runner.compilation_config = cc
    runner.uniform_decode_query_len = 1
    runner.input_batch = types.SimpleNamespace(lora_id_to_lora_request={})
    runner.requests = {}
    dispatcher = CudagraphDispatcher(vllm_config)
    if scenario == "graph":
        dispatcher.initialize_cudagraph_keys(CUDAGraphMode.FULL, 1)
    runner.cudagraph_dispatcher = dispatcher
    tokens = [so.num_scheduled_tokens[r] for r in so.num_scheduled_tokens]
    runner._bench_np = (np.array(tokens, dtype=np.int32), max(tokens))

    def model(input_ids=None, positions=None, intermediate_tensors=None, inputs_embeds=None):
        return ()  # a tuple: vLLM's weak_ref_tensors passes it through without its CUDA op

    runner.model = model
    if scenario == "graph":
        import torch
        from vllm.compilation.cuda_graph import CUDAGraphWrapper
        from vllm.platforms import current_platform

        type(current_platform)._global_graph_pool = (
            "fake-pool",
            0,
        )  # torch.cuda.graph_pool_handle()
        runner.model = CUDAGraphWrapper(model, vllm_config, runtime_mode=CUDAGraphMode.FULL)
        saved = torch.cuda.CUDAGraph, torch.cuda.graph
        torch.cuda.CUDAGraph, torch.cuda.graph = _FakeGraph, _fake_graph_capture
        try:
            runner.execute_model(so)  # the capture (the real wrapper's capture path, fake graph)
        finally:
            torch.cuda.CUDAGraph, torch.cuda.graph = saved
        (entry,) = runner.model.concrete_cudagraph_entries.values()
        assert isinstance(entry.cudagraph, _FakeGraph)
    return runner


CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}
_clock = time.perf_counter


def timed_steps(runner, so, n: int) -> list[float]:
    pc = _clock
    em = runner.execute_model
    out = []
    for _ in range(n):
        t0 = pc()
        em(so)
        out.append(pc() - t0)
    return out


def _block(runner, so, steps: int, warmup: int) -> float:
    """The median step of one timed block, after ``warmup`` untimed steps; no GC inside."""
    gc.collect()
    timed_steps(runner, so, warmup)
    gc.disable()
    try:
        return statistics.median(timed_steps(runner, so, steps))
    finally:
        gc.enable()


def bench_one(
    batch: int, scenario: str, cats, rounds: int, steps: int, wd, warmup: int = 50
) -> dict:
    from vllm.config import CUDAGraphMode
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    so, vllm_config = _steady_decode_output(batch)
    real = GPUModelRunner.__dict__["execute_model"]
    GPUModelRunner.execute_model = _bench_execute_model
    try:
        runner = _make_runner(vllm_config, scenario, batch, so)
        mode, desc = runner._determine_batch_execution_and_padding(
            batch, batch, runner._bench_np[0], 1
        )[:2]
        want = CUDAGraphMode.FULL if scenario == "graph" else CUDAGraphMode.NONE
        assert mode == want, (scenario, mode, desc)
        reg = Registry(
            probes.targets_for(cats), CoreRecorder(_core), watchdog=wd, vllm_version=_vllm()
        )
        per = {"without": [], "with": []}
        ratios, added = [], []
        applied = 0
        timed_steps(runner, so, steps)  # warm
        for r in range(rounds):
            got = {}
            for variant in ("without", "with") if r % 2 == 0 else ("with", "without"):
                if variant == "with":
                    reg.activate()
                    applied = sum(1 for row in reg.status() if row["state"] == APPLIED)
                got[variant] = _block(runner, so, steps, warmup)
                per[variant].append(got[variant])
                if variant == "with":
                    reg.deactivate()
                    _core.flush()  # the collector's writing happens outside the timed steps
            ratios.append(got["with"] / got["without"])
            added.append(got["with"] - got["without"])
    finally:
        GPUModelRunner.execute_model = real
    without = statistics.median(per["without"])
    with_ = statistics.median(per["with"])
    return {
        "batch": batch,
        "scenario": scenario,
        "categories": list(cats),
        "targets_applied": applied,
        "clock": next(k for k, v in CLOCKS.items() if v is _clock),
        "us_per_step_without": round(without * 1e6, 3),
        "us_per_step_with": round(with_ * 1e6, 3),
        # Paired per round (adjacent with/without blocks): median, min and max.
        "ratio": round(statistics.median(ratios), 4),
        "ratio_min": round(min(ratios), 4),
        "ratio_max": round(max(ratios), 4),
        "added_us_per_step": round(statistics.median(added) * 1e6, 3),
        "added_us_min": round(min(added) * 1e6, 3),
        "added_us_max": round(max(added) * 1e6, 3),
        # Best blocks (as timeit reports): contention on a shared machine only ever adds time.
        "us_per_step_without_best": round(min(per["without"]) * 1e6, 3),
        "us_per_step_with_best": round(min(per["with"]) * 1e6, 3),
        "added_us_best": round((min(per["with"]) - min(per["without"])) * 1e6, 3),
    }


def _vllm() -> str:
    import vllm

    return vllm.__version__


def _csv_rows(folder: str) -> dict[str, int]:
    import os

    out = {}
    for name in ("forward_pass_timing", "cuda_graph_timeline", "cuda_graph_usage"):
        p = os.path.join(folder, f"{name}.csv")
        if os.path.exists(p):
            with open(p) as f:
                out[name] = max(sum(1 for _ in f) - 1, 0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--scenarios", default="eager,graph")
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument(
        "--warmup",
        type=int,
        default=50,
        help="untimed steps before each timed block (>= 20: patching invalidates CPython's "
        "specialization caches)",
    )
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: perf_counter; thread: this thread's CPU time (immune to other processes "
        "taking the CPU on a shared machine)",
    )
    ap.add_argument("--categories", default=",".join(WORKER_CATEGORIES))
    ap.add_argument("--per-category", action="store_true", help="also each category alone")
    ap.add_argument("--quick", action="store_true", help="tiny run (the test suite's check)")
    ap.add_argument("--json", default="", help="write the results here too")
    args = ap.parse_args(argv)
    global _clock
    _clock = CLOCKS[args.clock]
    if args.quick:
        args.batches, args.rounds, args.steps, args.warmup = "1", 2, 20, 20
    logging.getLogger("vllm").setLevel(logging.WARNING)
    cats = [c for c in args.categories.split(",") if c]
    tmp = tempfile.mkdtemp(prefix="pm-bench-worker-")
    wd = ModuleWatchdog()
    wd.install()
    results = []
    try:
        folder = _core.start(tmp, "bench", flush_interval_ms=100)
        for b in [int(x) for x in args.batches.split(",")]:
            for sc in [s for s in args.scenarios.split(",") if s]:
                sets = [cats] + ([[c] for c in cats] if args.per_category and len(cats) > 1 else [])
                for cs in sets:
                    res = bench_one(b, sc, cs, args.rounds, args.steps, wd, args.warmup)
                    results.append(res)
                    label = "all" if cs is cats else cs[0]
                    print(
                        f"batch {b:4d} {sc:6s} {label:15s}"
                        f" {res['us_per_step_without']:8.2f} us/step without"
                        f" {res['us_per_step_with']:8.2f} with  ratio {res['ratio']:.3f}"
                        f" [{res['ratio_min']:.3f}..{res['ratio_max']:.3f}]"
                        f"  added {res['added_us_per_step']:+6.2f} us/step"
                        f" [{res['added_us_min']:+.2f}..{res['added_us_max']:+.2f}]"
                        f"  best blocks {res['us_per_step_without_best']:.2f} /"
                        f" {res['us_per_step_with_best']:.2f} ({res['added_us_best']:+.2f})"
                        f"  ({res['targets_applied']} targets, {res['clock']} clock)",
                        flush=True,
                    )
        _core.flush()
        rows = _csv_rows(folder)
        stats = _core.stats()
    finally:
        _core.stop()
        wd.uninstall()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"core: {stats['recorded']} rows recorded, {stats['dropped']} dropped; CSV rows {rows}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"results": results, "recorded": stats["recorded"], "csv_rows": rows}, f, indent=1
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
