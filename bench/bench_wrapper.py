"""Added cost of profilemate._core.timed vs a minimal pure-Python closure wrapper.

Target (issue 3): added cost of ours <= 0.4 x added cost of a closure that takes two
time.perf_counter_ns() readings and stores nothing. All variants are measured in the same run,
interleaved round by round, so machine noise hits them alike; each figure is a median over
rounds. Recording is on (spans really go to the ring and the collector writes them); the ring is
drained between measurements (outside the timed region) so no measured call takes the drop path.

    .venv/bin/python bench/bench_wrapper.py [--rounds 21] [--calls 200000] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import timeit

from profilemate import _core


def closure_wrap(fn):
    pc = time.perf_counter_ns

    def wrapper(*args, **kwargs):
        t0 = pc()  # noqa: F841
        result = fn(*args, **kwargs)
        t1 = pc()  # noqa: F841 - taken and dropped, as the baseline prescribes
        return result

    return wrapper


def target(x):
    return x


class Obj:
    def method(self, x):
        return x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args()

    out_dir = tempfile.mkdtemp(prefix="profilemate-bench-wrapper-")
    _core.start(out_dir, "bench", ring_capacity=1 << 18, trace=False)
    table = _core.define_table("wrapper_bench", [("step", "step"), ("dur_us", "dur_us")])
    name = _core.intern("target")

    class ClosureObj:
        method = closure_wrap(Obj.method)

    class TimedObj:
        method = _core.timed(Obj.method, table, name)

    plain_o, closure_o, timed_o = Obj(), ClosureObj(), TimedObj()
    variants = {
        "bare": ("f(1)", {"f": target}),
        "closure": ("f(1)", {"f": closure_wrap(target)}),
        "timed": ("f(1)", {"f": _core.timed(target, table, name)}),
        "bare_method": ("o.method(1)", {"o": plain_o}),
        "closure_method": ("o.method(1)", {"o": closure_o}),
        "timed_method": ("o.method(1)", {"o": timed_o}),
    }
    timers = {k: timeit.Timer(stmt, globals=g) for k, (stmt, g) in variants.items()}
    per_call: dict[str, list[float]] = {k: [] for k in variants}
    ratios: dict[str, list[float]] = {"function": [], "method": []}
    for t in timers.values():  # warm up (ring creation, caches)
        t.timeit(number=1000)
    _core.flush()
    for _ in range(args.rounds):
        for k, t in timers.items():
            per_call[k].append(t.timeit(number=args.calls) / args.calls * 1e9)
            _core.flush()  # drain outside the timed region
        for kind, (b, c, o) in {
            "function": ("bare", "closure", "timed"),
            "method": ("bare_method", "closure_method", "timed_method"),
        }.items():
            added_c = per_call[c][-1] - per_call[b][-1]
            added_o = per_call[o][-1] - per_call[b][-1]
            ratios[kind].append(added_o / added_c)
    st = _core.stats()
    _core.stop()
    shutil.rmtree(out_dir, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in per_call.items()}
    result = {
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "median_ns_per_call": {k: round(v, 1) for k, v in med.items()},
        "added_ns": {
            "closure": round(med["closure"] - med["bare"], 1),
            "timed": round(med["timed"] - med["bare"], 1),
            "closure_method": round(med["closure_method"] - med["bare_method"], 1),
            "timed_method": round(med["timed_method"] - med["bare_method"], 1),
        },
        "ratio_timed_over_closure": {k: round(statistics.median(v), 3) for k, v in ratios.items()},
        "spans_recorded": st["recorded"],
        "spans_dropped": st["dropped"],
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"Python {result['python']}, {args.rounds} rounds x {args.calls} calls, median per call:")
    for k, v in result["median_ns_per_call"].items():
        print(f"  {k:16s} {v:8.1f} ns")
    a = result["added_ns"]
    r = result["ratio_timed_over_closure"]
    print(
        f"added cost, function: closure {a['closure']} ns, timed {a['timed']} ns, "
        f"ratio {r['function']} (target <= 0.4)"
    )
    print(
        f"added cost, method:   closure {a['closure_method']} ns, timed {a['timed_method']} ns, "
        f"ratio {r['method']} (target <= 0.4)"
    )
    print(f"spans recorded {st['recorded']}, dropped {st['dropped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
