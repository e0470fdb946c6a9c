"""Added cost per call of the guarded Python wrapper that the `schedule` probe really uses.

The EngineCore's `Scheduler.schedule` probe (src/profilemate/probes/cpu_ops.py) is a guarded Python
wrapper: before() advances the step id, after() stamps the step on the result and records a span.
This measures exactly that probe (built by its own factory, recording into a live core session)
around a trivial `schedule`, against the bare call and against the minimal closure of
bench_wrapper.py, interleaved round by round; figures are medians over rounds.

    .venv/bin/python bench/bench_guarded.py [--rounds 15] [--calls 100000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import timeit

from profilemate import _core
from profilemate.probes import cpu_ops
from profilemate.probes.guard import ProbeState, guarded
from profilemate.probes.recorder import CoreRecorder
from profilemate.probes.registry import ProbeContext


class Output:  # stands in for SchedulerOutput: a plain object the probe stamps and reads
    total_num_scheduled_tokens = 16


class Scheduler:
    def schedule(self):
        return Output()


def closure_wrap(fn):
    pc = time.perf_counter_ns

    def wrapper(*args, **kwargs):
        t0 = pc()  # noqa: F841
        result = fn(*args, **kwargs)
        t1 = pc()  # noqa: F841
        return result

    return wrapper


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=100_000)
    args = ap.parse_args()

    out_dir = tempfile.mkdtemp(prefix="profilemate-bench-guarded-")
    _core.start(out_dir, "bench", ring_capacity=1 << 18, trace=False)
    target = next(t for t in cpu_ops.TARGETS if t.operation == "schedule")
    state = ProbeState(target.key)
    ctx = ProbeContext(target, Scheduler.schedule, CoreRecorder(_core), state)
    before, after = target.probe(ctx)

    class Guarded(Scheduler):
        schedule = guarded(Scheduler.schedule, state, before, after)

    class Closure(Scheduler):
        schedule = closure_wrap(Scheduler.schedule)

    objs = {"bare": Scheduler(), "closure": Closure(), "guarded": Guarded()}
    per_call: dict[str, list[float]] = {k: [] for k in objs}
    try:
        for _ in range(args.rounds):
            for k, o in objs.items():
                _core.flush()  # keep the ring empty: no measured call takes the drop path
                t = timeit.timeit(o.schedule, number=args.calls)
                per_call[k].append(t / args.calls * 1e9)
        assert state.active and state.errors == 0, state.as_dict()
        med = {k: statistics.median(v) for k, v in per_call.items()}
        added = {k: med[k] - med["bare"] for k in ("closure", "guarded")}
        for k in objs:
            extra = f"  added {added[k]:.0f} ns" if k in added else ""
            print(f"{k:8s} {med[k]:8.0f} ns/call{extra}")
        print(f"guarded added / closure added = {added['guarded'] / added['closure']:.2f}")
        print(
            f"stats: {_core.stats()['recorded']} spans recorded, {_core.stats()['dropped']} dropped"
        )
    finally:
        _core.stop()
        shutil.rmtree(out_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
