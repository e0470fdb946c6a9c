"""Added cost per call of the probe wrapper (C++ `_core.timed` with Python hooks) vs a closure.

Three ratios, all against the added cost of a minimal pure-Python closure that takes two
`time.perf_counter_ns()` readings (the baseline of bench_wrapper.py), measured in one run,
interleaved round by round so machine noise hits every variant alike (figures: medians over rounds):

  hooked    a probe with a before and an after hook that each read one attribute     target <= 1.0
  timed     the same wrapper without hooks (timing only)                            target <= 0.4
  off       the hooked wrapper while recording is off                               target <= 0.2

plus `schedule`: the real `Scheduler.schedule` probe of probes/categories/cpu_ops.py (built by its
own hooks factory through the registry's wrapper) around a trivial schedule(). Recording is on (rows
really reach the ring; the collector writes them); the ring is drained between measurements,
outside the timed region, so no measured call takes the drop path.

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
from profilemate.probes import load_category
from profilemate.probes.recorder import CoreRecorder
from profilemate.probes.registry import Health, bind_params, hook_params
from profilemate.probes.spec import HookContext, Hooks


class Output:  # stands in for SchedulerOutput: a plain object the probe stamps and reads
    def __init__(self) -> None:
        self.total_num_scheduled_tokens = 16


OUT = Output()


class Scheduler:
    def __init__(self) -> None:
        self.max_num_running_reqs = 256

    def schedule(self):
        return OUT


def closure_wrap(fn):
    pc = time.perf_counter_ns

    def wrapper(*args, **kwargs):
        t0 = pc()  # noqa: F841
        result = fn(*args, **kwargs)
        t1 = pc()  # noqa: F841 - taken and dropped, as the baseline prescribes
        return result

    return wrapper


def read_one_before(self):
    return self.max_num_running_reqs


def read_one_after(result, self):
    return result.total_num_scheduled_tokens


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=100_000)
    args = ap.parse_args()

    out_dir = tempfile.mkdtemp(prefix="profilemate-bench-guarded-")

    def start():
        _core.start(out_dir, "bench", ring_capacity=1 << 18, trace=False)

    start()
    rec = CoreRecorder(_core)
    cpu_ops = load_category("cpu_ops")
    target = next(t for t in cpu_ops.TARGETS if t.operation == "schedule")
    table, name = rec.table(target.table), rec.intern("schedule")
    hooks = target.hooks(HookContext(target, Scheduler.schedule, rec))
    health = Health(target.key)

    def wrap(before=None, after=None, **kw):
        # Bound by name exactly as the registry does it.
        params, problem = bind_params(Scheduler.schedule, hook_params(Hooks(before, after)))
        assert problem is None, problem
        return _core.timed(
            Scheduler.schedule, table, name, 0, before=before, after=after, params=params,
            on_error=health.fail, **kw,
        )  # fmt: skip

    classes = {
        "bare": Scheduler,
        "closure": type("Closure", (Scheduler,), {"schedule": closure_wrap(Scheduler.schedule)}),
        "timed": type("Timed", (Scheduler,), {"schedule": wrap()}),
        "hooked": type(
            "Hooked",
            (Scheduler,),
            {"schedule": wrap(before=read_one_before, after=read_one_after)},
        ),
        "schedule": type(
            "Schedule",
            (Scheduler,),
            {"schedule": wrap(before=hooks.before, after=hooks.after, sets_step=True)},
        ),
    }
    objs = {k: c() for k, c in classes.items()}
    per_call: dict[str, list[float]] = {k: [] for k in [*objs, "off"]}

    def measure(key, obj):
        t = timeit.timeit(obj.schedule, number=args.calls)
        per_call[key].append(t / args.calls * 1e9)

    try:
        for _ in range(args.rounds):
            for k, o in objs.items():
                _core.flush()  # keep the ring empty: no measured call takes the drop path
                measure(k, o)
            _core.flush()
            recorded, dropped = _core.stats()["recorded"], _core.stats()["dropped"]
            _core.stop()  # recording off: the hooked wrapper must only forward
            measure("off", objs["hooked"])
            start()
        assert health.errors == 0, health.as_dict()
        med = {k: statistics.median(v) for k, v in per_call.items()}
        added = {k: med[k] - med["bare"] for k in med if k != "bare"}
        for k in med:
            extra = f"  added {added[k]:6.0f} ns" if k in added else ""
            ratio = f"  = {added[k] / added['closure']:.2f} x closure" if k in added else ""
            print(f"{k:9s} {med[k]:7.0f} ns/call{extra}{ratio}")
        print(f"hook-free timed added / closure added = {added['timed'] / added['closure']:.2f}")
        print(f"recording off added / closure added = {added['off'] / added['closure']:.2f}")
        print(f"schedule probe added / closure added = {added['schedule'] / added['closure']:.2f}")
        print(f"last round: {recorded} spans recorded, {dropped} dropped")
        print(f"guarded added / closure added = {added['hooked'] / added['closure']:.2f}")
    finally:
        _core.stop()
        shutil.rmtree(out_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
