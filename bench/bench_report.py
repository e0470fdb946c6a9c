"""How fast `profilemate report` reads a session, against `cat` reading the same files.

Writes a synthetic session (an EngineCore and a worker, ROWS rows in each of
``cpu_operations_timing``, ``forward_pass_timing`` and ``cuda_graph_timeline``: the per-step
tables that grow with a run), then, in alternating order for ROUNDS rounds, times ``cat`` of every
CSV file into /dev/null and the report (``_core.report``, in this process: no interpreter
start-up), both on page-cached files. Reported: the medians, the paired ratio report / cat
(median, min..max), rows/s of the report (wall clock and per CPU second of this process), and the
report's peak RSS growth.

    .venv/bin/python bench/bench_report.py [--rows 1500000] [--rounds 5] [--dir DIR] [--quick]

``--quick`` is the test suite's check that the benchmark runs (small and fast; no threshold).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def write_session(root: Path, rows: int) -> tuple[Path, int]:
    session = root / "20260101-000000-bench-1"
    ec, wk = session / "enginecore-1", session / "worker-0-2"
    ec.mkdir(parents=True, exist_ok=True)
    wk.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    with open(wk / "forward_pass_timing.csv", "w") as f:
        f.write(
            "timestamp_sec,step_id,run,phase,num_reqs,num_tokens,forward_time_ms,gpu_time_ms,"
            "throughput_tokens_per_sec\n"
        )
        f.writelines(
            f"{i * 0.001:.6f},{i},serve,{'decode' if i % 7 else 'mixed'},{i % 32},{i % 512},"
            f"{rng.random() * 10:.6f},,{rng.random() * 1e5:.3f}\n"
            for i in range(1, rows + 1)
        )
    with open(wk / "cuda_graph_timeline.csv", "w") as f:
        f.write(
            "timestamp_sec,step_id,runtime_mode,eager_reason,graph_action,num_tokens,"
            "num_padded_tokens,num_reqs,uniform,has_lora,duration_ms,descriptor_num_reqs\n"
        )
        f.writelines(
            f"{i * 0.001:.6f},{i},FULL,,replay,{i % 64},64,{i % 32},1,0,{rng.random() * 10:.6f},32\n"
            if i % 3
            else f"{i * 0.001:.6f},{i},NONE,too_many_tokens,eager,{i % 512},{i % 512},{i % 32},0,0,"
            f"{rng.random() * 10:.6f},\n"
            for i in range(1, rows + 1)
        )
    with open(ec / "cpu_operations_timing.csv", "w") as f:
        f.write(
            "timestamp_sec,step_id,operation,duration_ms,context,num_tokens,engine_timestamp,"
            "num_requests\n"
        )
        f.writelines(
            f"{i * 0.001:.6f},{i},{'schedule' if i % 2 else 'update_from_output'},"
            f"{rng.random():.6f},Scheduler.schedule,{i % 512},0,0\n"
            for i in range(1, rows + 1)
        )
    return session, 3 * rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_500_000, help="rows per table (3 tables)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", help="where to write the session (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="small and fast (the test suite's run)")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows, args.rounds = 20_000, 2
    from profilemate import _core

    with tempfile.TemporaryDirectory(prefix="pm-bench-report-") as tmp:
        root = Path(args.dir or tmp)
        session, total = write_session(root, args.rows)
        files = sorted(str(p) for p in session.glob("*/*.csv"))
        size = sum(Path(f).stat().st_size for f in files)
        subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)  # page cache
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cat_s, rep_s, rep_cpu, ratios = [], [], [], []
        for r in range(args.rounds):
            order = ("cat", "report") if r % 2 == 0 else ("report", "cat")
            times = {}
            for what in order:
                if what == "cat":
                    t0 = time.perf_counter()
                    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)
                    times[what] = time.perf_counter() - t0
                else:
                    c0, t0 = time.process_time(), time.perf_counter()
                    _out, _text, warnings, tables, rows = _core.report(
                        [str(session)], str(root / "report")
                    )
                    times[what] = time.perf_counter() - t0
                    rep_cpu.append(time.process_time() - c0)
                    assert not warnings and tables == 3 and rows == total, (warnings, rows)
            cat_s.append(times["cat"])
            rep_s.append(times["report"])
            ratios.append(times["report"] / times["cat"])
        rss_growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    res = {
        "rows": total,
        "bytes": size,
        "cat_s": statistics.median(cat_s),
        "report_s": statistics.median(rep_s),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "rows_per_s_wall": total / statistics.median(rep_s),
        "rows_per_cpu_s": total / statistics.median(rep_cpu),
        "peak_rss_growth_kb": rss_growth_kb,
    }
    print(
        f"{total:,} rows, {size / 1e6:.0f} MB in 3 files; {args.rounds} rounds\n"
        f"cat: {res['cat_s']:.3f} s   report: {res['report_s']:.3f} s   "
        f"ratio report/cat: median {res['ratio_median']:.1f} (min {res['ratio_min']:.1f}, "
        f"max {res['ratio_max']:.1f})\n"
        f"report: {res['rows_per_s_wall'] / 1e6:.2f} M rows/s (wall), "
        f"{res['rows_per_cpu_s'] / 1e6:.2f} M rows per CPU second; "
        f"peak RSS growth {rss_growth_kb / 1024:.1f} MiB"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
