"""Where the worker probes' time goes: each hook of forward_timing / cuda_graphs / encoder_timing
timed on its own, called directly with the arguments of a real step, and the C++ wrapper's own cost.

Set-up as ``bench_worker_probes.py`` (vLLM's real V1 runner methods, dispatcher, ``SchedulerOutput``
of ``--batch`` decoding requests, the real wrappers applied by the ``Registry``, a live core
session); the hooks are taken off the installed wrappers (``_profilemate_hooks``) and each is called
``--calls`` times in a loop, timed with this thread's CPU clock. The figures are per call (µs),
medians of ``--repeat`` loops, and include the loop's own call of a lambda (the ``lambda``
line). A hook's figure is a lower bound of what it adds in a real step: hot caches, no other code
between the calls.

    .venv/bin/python bench/bench_worker_hooks.py [--batch 256] [--scenario graph|eager]
        [--calls 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_worker_probes as bw  # noqa: E402

from profilemate import _core, probes  # noqa: E402
from profilemate.hooks.watchdog import ModuleWatchdog  # noqa: E402
from profilemate.probes.recorder import CoreRecorder  # noqa: E402
from profilemate.probes.registry import Registry  # noqa: E402


def per_call(f, calls: int, repeat: int) -> float:
    for _ in range(200):
        f()
    out = []
    for _ in range(repeat):
        t = time.thread_time()
        for _ in range(calls):
            f()
        out.append((time.thread_time() - t) / calls)
    return statistics.median(out) * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--scenario", choices=("eager", "graph"), default="graph")
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    logging.getLogger("vllm").setLevel(logging.WARNING)
    from vllm.forward_context import set_forward_context
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    from profilemate.probes.categories import cuda_graphs as cg

    wd = ModuleWatchdog()
    wd.install()
    tmp = tempfile.mkdtemp(prefix="pm-bench-hooks-")
    _core.start(tmp, "bench", flush_interval_ms=100)
    real = GPUModelRunner.__dict__["execute_model"]
    GPUModelRunner.execute_model = bw._bench_execute_model
    b, n = args.batch, (args.calls, args.repeat)
    try:
        so, vc = bw._steady_decode_output(b)
        runner = bw._make_runner(vc, args.scenario, b, so)
        reg = Registry(
            probes.targets_for(bw.WORKER_CATEGORIES),
            CoreRecorder(_core),
            watchdog=wd,
            vllm_version=bw._vllm(),
        )
        reg.activate()
        hooks = {
            (st.target.category, st.site.qualname): p.wrapper._profilemate_hooks
            for st in reg._states.values()
            for p in st.patches
        }
        np_tokens, max_tokens = runner._bench_np
        res = runner._determine_batch_execution_and_padding(
            num_tokens=b, num_reqs=b, num_scheduled_tokens_np=np_tokens,
            max_num_scheduled_tokens=max_tokens, use_cascade_attn=False, num_encoder_reqs=0,
            allow_microbatching=False,
        )  # fmt: skip
        mode, desc = res[0], res[1]
        out = {}
        out["a whole step, with the probes"] = per_call(lambda: runner.execute_model(so), *n)
        bef, _ = hooks[("forward_timing", "GPUModelRunner.execute_model")]
        out["forward_timing execute_model before"] = per_call(lambda: bef(so), *n)
        _, aft = hooks[("cuda_graphs", "GPUModelRunner._determine_batch_execution_and_padding")]
        out["cuda_graphs dispatch after"] = per_call(
            lambda: aft(res, runner, b, b, np_tokens, max_tokens, False, False, 0), *n
        )
        bef, aft = hooks[("encoder_timing", "GPUModelRunner._execute_mm_encoder")]
        out["encoder_timing before + after"] = per_call(
            lambda: (bef(runner, so), aft([], runner, so)), *n
        )
        bef, aft = hooks[("forward_timing", "GPUModelRunner._model_forward")]
        out["forward_timing _model_forward before + after"] = per_call(
            lambda: (bef(runner), aft((), runner)), *n
        )
        _, aft = hooks[("cuda_graphs", "GPUModelRunner._model_forward")]
        cg._state.action = ""
        out["cuda_graphs _model_forward after (timeline row)"] = per_call(
            lambda: aft((), runner), *n
        )
        if args.scenario == "graph":
            cg._state.action = "replay"
            out["cuda_graphs _model_forward after (+ usage row)"] = per_call(
                lambda: aft((), runner), *n
            )
            bef, aft = hooks[("cuda_graphs", "CUDAGraphWrapper.__call__")]
            with set_forward_context(
                None, vc, num_tokens=desc.num_tokens, cudagraph_runtime_mode=mode,
                batch_descriptor=desc,
            ):  # fmt: skip
                out["cuda_graphs CUDAGraphWrapper before + after"] = per_call(
                    lambda: (bef(runner.model), aft((), runner.model)), *n
                )
        reg.deactivate()

        def f():
            pass

        out["lambda (the loop's own call)"] = per_call(lambda: None, *n)
        out["a Python function"] = per_call(f, *n)
        no_row = getattr(_core, "NO_ROW", 0xFFFFFFFF)
        out["_core.timed wrapper of it, no hooks"] = per_call(_core.timed(f, no_row, 0, 0), *n)
        out["_core.timed wrapper, a no-op before hook"] = per_call(
            _core.timed(f, no_row, 0, 0, before=lambda: None), *n
        )
    finally:
        GPUModelRunner.execute_model = real
        _core.stop()
        wd.uninstall()
    print(f"batch {b}, {args.scenario}: µs per call (thread CPU clock)")
    for k, v in out.items():
        print(f"  {k:48s} {v:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
