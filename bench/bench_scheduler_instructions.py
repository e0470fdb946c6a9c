"""Instructions the engine probes add per scheduler step, counted by callgrind (load-immune).

Wall and even thread-CPU times of a ~200 µs step are at the mercy of a shared machine; instruction
counts are not (the same binary and inputs give the same count whatever else runs). This runs the
steady-decode loop of ``bench_scheduler.py`` (vLLM's real ``Scheduler``, synthetic model outputs)
twice under ``valgrind --tool=callgrind``, without and with the engine probes, and counts only the
main thread's instructions over ``--steps`` steps (instrumentation is switched on just before the
measured steps and off after, so vLLM's import and the warm-up are not counted; the core's collector
thread, which does the writing, is reported apart). Instructions are not time: cache misses are not
in them, so the time the probes add is larger than instructions x the machine's usual rate.

    .venv/bin/python bench/bench_scheduler_instructions.py --batch 8 --steps 200     # ~7 min
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _measure(args: argparse.Namespace) -> int:
    """Inside valgrind: build the scheduler, warm up, count ``--steps`` steps."""
    sys.path.insert(0, str(HERE))
    import bench_scheduler as bs

    from profilemate import _core, probes
    from profilemate.demo.scheduler_harness import make_harness
    from profilemate.hooks.watchdog import ModuleWatchdog
    from profilemate.probes.recorder import CoreRecorder
    from profilemate.probes.registry import Registry

    batch, prompt = args.batch, 64
    h = make_harness(
        max_num_seqs=batch,
        max_num_batched_tokens=max(2048, batch * prompt),
        num_blocks=batch * ((prompt + 1500) // 16 + 2) + 16,
        max_model_len=1600,
    )
    h.add_requests(batch, prompt, 1400)
    for _ in range(3):
        h.step()
    tmp = tempfile.mkdtemp(prefix="pm-bench-ir-")
    _core.start(tmp, "bench", flush_interval_ms=100)
    if args.variant == "with":
        cats = [c for c in args.categories.split(",") if c] or bs.engine_categories()
        wd = ModuleWatchdog()
        wd.install()
        reg = Registry(probes.targets_for(cats), CoreRecorder(_core), watchdog=wd,
                       vllm_version=bs._vllm_version())  # fmt: skip
        reg.activate()
    bs._clock = float  # no clock reads: float() is 0.0
    bs.timed_steps(h, 50)  # warm: CPython's specialization caches after the class patching
    gc.collect()
    gc.disable()
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], stdout=subprocess.DEVNULL, check=True)
    bs.timed_steps(h, args.steps)
    subprocess.run(["callgrind_control", "-i", "off", pid], stdout=subprocess.DEVNULL, check=True)
    gc.enable()
    _core.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _totals(prefix: Path) -> dict[int, int]:
    """callgrind's per-thread totals (thread number -> instructions)."""
    out = {}
    for f in prefix.parent.glob(prefix.name + "*-*"):
        m = re.search(r"-(\d+)$", f.name)
        text = f.read_text(errors="replace")
        t = re.search(r"^totals:\s*(\d+)", text, re.M)
        if m and t:
            out[int(m.group(1))] = int(t.group(1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--categories", default="", help="default: every engine-side category")
    ap.add_argument("--variant", choices=("with", "without"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.variant:
        return _measure(args)
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise SystemExit("valgrind (with callgrind_control) is needed: apt-get install valgrind")
    counts = {}
    with tempfile.TemporaryDirectory(prefix="pm-bench-ir-") as tmp:
        for variant in ("without", "with"):
            prefix = Path(tmp) / f"cg.{variant}"
            cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
                   f"--callgrind-out-file={prefix}.%p", sys.executable, __file__,
                   "--variant", variant, "--batch", str(args.batch), "--steps", str(args.steps),
                   "--categories", args.categories]  # fmt: skip
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # the process's own file is "<prefix>.<pid>"; its threads "<prefix>.<pid>-NN"
            pids = {p.name.split(".")[2].split("-")[0] for p in Path(tmp).glob(f"cg.{variant}.*")}
            (pid,) = pids
            counts[variant] = _totals(Path(tmp) / f"cg.{variant}.{pid}")
    main_without, main_with = counts["without"].get(1, 0), counts["with"].get(1, 0)
    other_with = sum(v for k, v in counts["with"].items() if k != 1)
    other_without = sum(v for k, v in counts["without"].items() if k != 1)
    n = args.steps
    print(f"batch {args.batch}, {n} steps of schedule() + update_from_output(), main thread:")
    print(f"  without probes {main_without / n:12,.0f} instructions/step")
    print(f"  with probes    {main_with / n:12,.0f} instructions/step")
    print(
        f"  added          {(main_with - main_without) / n:12,.0f} instructions/step "
        f"(x{main_with / main_without:.3f})"
    )
    print(f"  other threads (the core's collector): {(other_with - other_without) / n:,.0f}/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
