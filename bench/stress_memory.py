"""Memory-flat stress of the core: record at a fixed high rate for N seconds, print RSS over time.

Not a CI test (it runs for minutes at full speed). The issue's bar: memory stays flat during a
10-minute run at >= 1M events/s:

    .venv/bin/python bench/stress_memory.py --seconds 600 --rate 1000000

Output: one line per second (elapsed, RSS, events recorded/dropped, rows written) and a verdict
line comparing RSS after warm-up with RSS at the end. Written files are truncated every few
seconds so a long run does not fill the disk (the writer's offsets continue; files become sparse).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from profilemate import _core


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=int, default=1_000_000, help="target events per second")
    ap.add_argument("--trace", action="store_true", help="also write trace.json")
    ap.add_argument("--warmup", type=float, default=5, help="seconds before the RSS baseline")
    args = ap.parse_args()

    out = tempfile.mkdtemp(prefix="profilemate-stress-")
    pdir = _core.start(out, "stress", trace=args.trace)
    t = _core.define_table(
        "stress_rows",
        [
            ("timestamp_sec", "ts_sec"),
            ("step", "step"),
            ("op", "name"),
            ("ms", "dur_ms"),
            ("tokens", "a0"),
            ("ctx", "ctx"),
        ],
    )
    names = [_core.intern(n) for n in ("forward", "sample", "schedule", "prepare_inputs")]
    ctx = _core.intern("decode")
    record, now = _core.record_span, _core.now_ns
    batch = 1000
    start = time.monotonic()
    next_report, next_truncate = start + 1, start + 5
    sent = 0
    samples = []
    print("elapsed_s rss_mib recorded dropped written_rows", flush=True)
    while True:
        t_now = time.monotonic()
        elapsed = t_now - start
        if elapsed >= args.seconds:
            break
        behind = int(elapsed * args.rate) - sent
        if behind <= 0:
            time.sleep(0.0005)
            continue
        for i in range(min(behind, batch)):
            record(t, names[i & 3], now(), 150_000 + i, sent + i, ctx, a0=i)
        sent += min(behind, batch)
        if t_now >= next_report:
            st = _core.stats()
            rss = rss_mib()
            samples.append((elapsed, rss))
            print(
                f"{elapsed:8.1f} {rss:8.1f} {st['recorded']:12d} {st['dropped']:10d} "
                f"{st['written_rows']:12d}",
                flush=True,
            )
            next_report += 1
        if t_now >= next_truncate:
            for name in os.listdir(pdir):
                os.truncate(os.path.join(pdir, name), 0)
            next_truncate += 5
    _core.flush()
    st = _core.stats()
    _core.stop()
    shutil.rmtree(out, ignore_errors=True)
    after = [r for e, r in samples if e >= args.warmup]
    achieved = st["recorded"] + st["dropped"]
    print(
        f"events offered {achieved} in {args.seconds:.0f} s = {achieved / args.seconds / 1e6:.2f}"
        f"M/s; recorded {st['recorded']}, dropped {st['dropped']}"
    )
    if after:
        print(
            f"RSS after warm-up: first {after[0]:.1f} MiB, last {after[-1]:.1f} MiB, "
            f"min {min(after):.1f}, max {max(after):.1f}, growth {after[-1] - after[0]:+.1f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
