"""End-to-end A/B: the same vLLM workload with and without ProfileMate, interleaved.

Each round runs `python -m profilemate.demo.workload` twice — plain, then under `profilemate run`
(order alternates between rounds to cancel drift) — and compares vLLM's own generate time
(`generate_s` in the workload's JSON: the `LLM.generate` call only, engine start-up excluded).
Reports per-round ratios profiled/plain and their median. Each run starts a vLLM engine
(~50 s here), so keep rounds few.

    .venv/bin/python bench/bench_e2e_overhead.py --rounds 3 --max-tokens 128
    .venv/bin/python bench/bench_e2e_overhead.py --model moe --probes moe [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run_once(work: Path, profiled: bool, workload: list[str], probes: str = "all") -> float:
    work.mkdir(parents=True, exist_ok=True)
    out = work / ("p.json" if profiled else "u.json")
    cmd = [sys.executable, "-m", "profilemate.demo.workload", *workload, "--out-json", str(out)]
    if profiled:
        cmd = [
            sys.executable,
            "-m",
            "profilemate.cli",
            "run",
            "--dir",
            str(work / "prof"),
            "--probes",
            probes,
            "--",
            *cmd,
        ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROFILEMATE")}
    env["VLLM_LOGGING_LEVEL"] = "WARNING"
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return float(json.loads(out.read_text())["generate_s"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default="dense")
    ap.add_argument("--num-prompts", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--probes", default="all", help="categories profiled ('all' or a comma list)")
    ap.add_argument("--compile", action="store_true", help="vLLM's default compilation")
    args = ap.parse_args()
    workload = ["--model", args.model, "--num-prompts", str(args.num_prompts),
                "--max-tokens", str(args.max_tokens)]  # fmt: skip
    if args.compile:
        workload.append("--compile")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            order = (False, True) if i % 2 == 0 else (True, False)
            t = {}
            for profiled in order:
                t[profiled] = run_once(Path(tmp) / f"r{i}", profiled, workload, args.probes)
            ratios.append(t[True] / t[False])
            print(
                f"round {i + 1}: plain {t[False]:.3f} s, profiled {t[True]:.3f} s, "
                f"ratio {ratios[-1]:.3f}",
                flush=True,
            )
    print(f"median ratio profiled/plain over {len(ratios)} rounds: {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
