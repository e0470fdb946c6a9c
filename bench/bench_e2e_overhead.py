"""End to end: what leaving ProfileMate on costs real vLLM, offline and served (the benchmark of record).

**Offline** (``--mode offline``). One child process per configuration (tiny dense / MoE model,
``enforce_eager`` / vLLM's default compilation, and a forced-preemption setting) starts one vLLM
engine *in process* (``VLLM_ENABLE_V1_MULTIPROCESSING=0``: EngineCore and worker live in the
child, so profiling can be switched on and off between runs without restarting the engine), runs a
warm-up, then ``--pairs`` pairs of the same fixed workload (fixed seed, prompt and output lengths,
``ignore_eos``) *without* and *with* ProfileMate, order alternating per pair (A B, B A, ...).
"With" is what ``profilemate run`` installs in a process: a session of the C++ core plus the
registry with every probe of the chosen categories applied; "without" is the same engine after the
registry removed every wrapper (``deactivate``: the original functions are back, nothing skipped).
Per pair: generated tokens/s of each run and the ratio with/without. After the all-probes set, one
set per category with only that category on (``--per-category``, dense and MoE eager), so a costly
probe can be found.

**Served** (``--mode served``). vLLM's OpenAI server (``python -m vllm.entrypoints.openai.api_server``;
the ``vllm`` console script is broken in the CPU build) on loopback, started plain or under
``profilemate run``, alternating per pair; load from vLLM's own benchmark client
(``vllm.benchmarks.serve``, what ``vllm bench serve`` runs) with the random dataset, a fixed request
count and concurrency. Per run: request and output-token throughput, TTFT / ITL / E2E p50 and p99.

    .venv/bin/python bench/bench_e2e_overhead.py                      # both modes, full
    .venv/bin/python bench/bench_e2e_overhead.py --mode offline --pairs 7
    .venv/bin/python bench/bench_e2e_overhead.py --quick              # <= 3 min: it still works

The machine is shared and noisy: every figure is a ratio of runs made in the same session,
adjacent in time. ``--quick`` proves the benchmark runs and produces numbers; it asserts nothing
about them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# name -> (tiny model, compile, KV cache MiB, prompts, prompt tokens, output tokens, max_num_seqs)
CONFIGS = {
    "dense-eager": ("dense", False, 64.0, 128, 64, 128, 64),
    "dense-compiled": ("dense", True, 64.0, 128, 64, 128, 64),
    "moe-eager": ("moe", False, 64.0, 128, 64, 128, 64),
    "moe-compiled": ("moe", True, 64.0, 128, 64, 128, 64),
    # 1 MiB of KV cache (1 KiB per token on the tiny dense model): the scheduler must preempt.
    "dense-preempt": ("dense", False, 1.0, 64, 64, 128, 64),
}
DEFAULT_CONFIGS = "dense-eager,dense-compiled,moe-eager,moe-compiled,dense-preempt"


_THREADS = 1


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROFILEMATE")}
    env["VLLM_LOGGING_LEVEL"] = "WARNING"
    if _THREADS:
        # vLLM's CPU worker binds one spinning OpenMP thread per core by default; on a machine
        # others share, one descheduled thread stalls the rest and a run takes several times as
        # long. A fixed thread count without binding keeps the with/without runs comparable.
        env["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
        env["OMP_NUM_THREADS"] = str(_THREADS)
    return env


def _summary(ratios: list[float]) -> dict:
    return {
        "median": round(statistics.median(ratios), 4),
        "min": round(min(ratios), 4),
        "max": round(max(ratios), 4),
    }


# ---------------------------------------------------------------- offline: the child process


def _child(args: argparse.Namespace) -> int:
    """One configuration in this process: one engine, then the pair sets; JSON to --out."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    import logging
    import random

    logging.getLogger("vllm").setLevel(logging.WARNING)
    from vllm import LLM, SamplingParams

    from profilemate import _core, config, probes
    from profilemate.demo.models import ensure_model
    from profilemate.hooks.watchdog import ModuleWatchdog
    from profilemate.probes.recorder import CoreRecorder
    from profilemate.probes.registry import APPLIED, Registry

    model, compiled, kv_mb, n_prompts, prompt_len, out_len, max_seqs = CONFIGS[args.config]
    if args.num_prompts:
        n_prompts = args.num_prompts
    tmp = tempfile.mkdtemp(prefix="pm-bench-e2e-")
    wd = ModuleWatchdog()
    wd.install()
    _core.start(tmp, "bench")
    from profilemate.activation.session import vllm_version

    version = vllm_version() or ""
    fixed_reg = None
    if args.fixed == "with":  # as under `profilemate run`: every probe before vLLM builds anything
        fixed_reg = Registry(probes.targets_for(config.categories()), CoreRecorder(_core),
                             watchdog=wd, vllm_version=version)  # fmt: skip
        fixed_reg.activate()
    llm = LLM(
        model=str(ensure_model(model)),
        enforce_eager=not compiled,
        dtype="float32",
        seed=0,
        max_model_len=512,
        max_num_seqs=max_seqs,
        kv_cache_memory_bytes=int(kv_mb * (1 << 20)),
        disable_log_stats=False,  # vLLM's own preemption counter (its default offline is off)
    )
    rng = random.Random(0)
    prompts = [
        {"prompt_token_ids": [rng.randrange(10, 250) for _ in range(prompt_len)]}
        for _ in range(n_prompts)
    ]
    params = SamplingParams(max_tokens=out_len, temperature=0.0, seed=0, ignore_eos=True)

    def run() -> tuple[float, int]:
        t0 = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        dt = time.perf_counter() - t0
        return dt, sum(len(o.outputs[0].token_ids) for o in outs)

    def preemptions() -> int:
        for m in llm.get_metrics():
            if m.name == "vllm:num_preemptions":
                return int(getattr(m, "value", 0))
        return 0

    if args.fixed:  # one engine for one side of a pair: warm up, then the timed runs
        try:
            for _ in range(args.warmup):
                run()
            rates = []
            for _ in range(args.pairs):
                dt, toks = run()
                rates.append(toks / dt)
            stats = _core.stats()
            applied = [r for r in fixed_reg.status() if r["state"] == APPLIED] if fixed_reg else []
        finally:
            _core.stop()
            wd.uninstall()
            shutil.rmtree(tmp, ignore_errors=True)
        Path(args.out).write_text(
            json.dumps({"tok_s": rates, "rows": stats["recorded"], "applied": len(applied)})
        )
        return 0

    all_cats = config.categories()
    sets = [("all", all_cats)]
    if args.per_category:
        # moe counts from a capture function attached when the model loads: switching it on in a
        # running engine measures nothing; its cost is in the MoE configurations' process pairs.
        sets += [(c, [c]) for c in all_cats if c != "moe"]
    out: dict = {"config": args.config, "sets": []}
    try:
        for _ in range(args.warmup):
            run()
        p0 = preemptions()
        for name, cats in sets:
            reg = Registry(probes.targets_for(cats), CoreRecorder(_core), watchdog=wd,
                           vllm_version=version)  # fmt: skip
            pairs = []
            applied = 0
            for i in range(args.pairs):
                got = {}
                for variant in ("without", "with") if i % 2 == 0 else ("with", "without"):
                    if variant == "with":
                        reg.activate()
                        applied = sum(1 for r in reg.status() if r["state"] == APPLIED)
                    try:
                        dt, toks = run()
                    finally:
                        if variant == "with":
                            reg.deactivate()
                            _core.flush()
                    got[variant] = toks / dt
                pairs.append(
                    {
                        "without_tok_s": round(got["without"], 2),
                        "with_tok_s": round(got["with"], 2),
                        "ratio": round(got["with"] / got["without"], 4),
                    }
                )
            out["sets"].append(
                {
                    "categories": name,
                    "targets_applied": applied,
                    "pairs": pairs,
                    "ratio": _summary([p["ratio"] for p in pairs]),
                }
            )
            print(_format_set(args.config, out["sets"][-1]), flush=True)
        stats = _core.stats()
        out["rows_recorded"] = stats["recorded"]
        out["rows_dropped"] = stats["dropped"]
        out["vllm_preemptions"] = preemptions() - p0
        out["generated_tokens_per_run"] = n_prompts * out_len
    finally:
        _core.stop()
        wd.uninstall()
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


def _format_set(config: str, s: dict) -> str:
    r = s["ratio"]
    pairs = " ".join(f"{p['ratio']:.3f}" for p in s["pairs"])
    return (
        f"{config:15s} {s['categories']:18s} ratio with/without median {r['median']:.3f} "
        f"[{r['min']:.3f}..{r['max']:.3f}]  pairs: {pairs}  ({s['targets_applied']} targets)"
    )


def offline(args: argparse.Namespace, work: Path) -> list[dict]:
    results = []
    for name in (c for c in args.configs.split(",") if c):
        if name not in CONFIGS:
            raise SystemExit(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}")
        out = work / f"offline-{name}.json"
        base = [sys.executable, __file__, "_child", "--config", name, "--warmup", str(args.warmup)]
        if args.num_prompts:
            base += ["--num-prompts", str(args.num_prompts)]
        if name in args.process_configs.split(","):
            results.append(_process_pairs(args, work, name, base))
            continue
        cmd = [*base, "--pairs", str(args.pairs), "--out", str(out)]
        if args.per_category and name in args.per_category_configs.split(","):
            cmd.append("--per-category")
        subprocess.run(cmd, env=_clean_env(), check=True)
        results.append(json.loads(out.read_text()))
    return results


def _process_pairs(args: argparse.Namespace, work: Path, name: str, base: list[str]) -> dict:
    """Pairs of fresh engines, one per side: needed where a probe attaches when the model loads
    (MoE's counter goes into the compiled graph), so it cannot be switched on in a running engine.
    "with" activates every probe before vLLM starts, as ``profilemate run`` does."""
    pairs = []
    for i in range(args.process_pairs):
        got = {}
        for variant in ("without", "with") if i % 2 == 0 else ("with", "without"):
            out = work / f"proc-{name}-{i}-{variant}.json"
            cmd = [*base, "--pairs", "1", "--fixed", variant, "--out", str(out)]
            subprocess.run(cmd, env=_clean_env(), check=True)
            res = json.loads(out.read_text())
            got[variant] = res["tok_s"][0]
            if variant == "with":
                rows, applied = res["rows"], res["applied"]
        pairs.append(
            {
                "without_tok_s": round(got["without"], 2),
                "with_tok_s": round(got["with"], 2),
                "ratio": round(got["with"] / got["without"], 4),
                "rows_recorded": rows,
            }
        )
    s = {
        "categories": "all (a fresh engine per run)",
        "targets_applied": applied,
        "pairs": pairs,
        "ratio": _summary([p["ratio"] for p in pairs]),
    }
    print(_format_set(name, s), flush=True)
    return {"config": name, "sets": [s], "rows_recorded": rows, "rows_dropped": 0,
            "vllm_preemptions": 0}  # fmt: skip


# ---------------------------------------------------------------- served


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server was not ready after {timeout:.0f} s")


def _serve_once(args: argparse.Namespace, work: Path, profiled: bool, tag: str) -> dict:
    from profilemate.demo.models import ensure_model

    model = str(ensure_model("dense"))
    port = _free_port()
    server = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
              "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
              "--max-model-len", "512", "--kv-cache-memory-bytes", str(64 << 20),
              "--seed", "0", "--enforce-eager"]  # fmt: skip
    if profiled:
        server = [sys.executable, "-m", "profilemate.cli", "run", "--dir", str(work / "prof"),
                  "--", *server]  # fmt: skip
    log = (work / f"server-{tag}.log").open("w")
    proc = subprocess.Popen(server, env=_clean_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        _wait_ready(port, proc, 600)
        result_dir = work / f"client-{tag}"
        client = [sys.executable, __file__, "_client", "--backend", "openai",
                  "--endpoint", "/v1/completions", "--host", "127.0.0.1", "--port", str(port),
                  "--model", model, "--tokenizer", model, "--dataset-name", "random",
                  "--random-input-len", str(args.served_input_len),
                  "--random-output-len", str(args.served_output_len), "--ignore-eos",
                  "--num-prompts", str(args.served_requests),
                  "--max-concurrency", str(args.served_concurrency), "--seed", "0",
                  "--num-warmups", str(args.served_concurrency),
                  "--save-result", "--result-dir", str(result_dir),
                  "--result-filename", "result.json",
                  "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
                  "--disable-tqdm"]  # fmt: skip
        subprocess.run(client, env=_clean_env(), check=True, stdout=subprocess.DEVNULL)
        res = json.loads((result_dir / "result.json").read_text())
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    keys = ("request_throughput", "output_throughput", "completed",
            "p50_ttft_ms", "p99_ttft_ms", "p50_itl_ms", "p99_itl_ms",
            "p50_e2el_ms", "p99_e2el_ms")  # fmt: skip
    got = {k: res.get(k) for k in keys}
    if profiled:  # what the profiled server wrote: its tables, over every process folder
        got["profiled_tables"] = sorted({p.name for p in (work / "prof").rglob("*.csv")})
    return got


def _client(argv: list[str]) -> int:
    """vLLM's own benchmark client, as ``vllm bench serve`` runs it."""
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    main(parser.parse_args(argv))
    return 0


SERVED_METRICS = ("output_throughput", "p50_ttft_ms", "p99_ttft_ms", "p50_itl_ms", "p99_itl_ms",
                  "p50_e2el_ms", "p99_e2el_ms")  # fmt: skip


def served(args: argparse.Namespace, work: Path) -> dict:
    pairs = []
    for i in range(args.served_pairs):
        got = {}
        for profiled in (False, True) if i % 2 == 0 else (True, False):
            tag = f"{i}-{'with' if profiled else 'without'}"
            got["with" if profiled else "without"] = _serve_once(args, work, profiled, tag)
        ratios = {
            k: round(got["with"][k] / got["without"][k], 4)
            for k in SERVED_METRICS
            if got["with"].get(k) and got["without"].get(k)
        }
        pairs.append({**got, "ratio": ratios})
        print(
            f"served pair {i + 1}: "
            + "  ".join(f"{k} {got['without'][k]:.2f}->{got['with'][k]:.2f}" for k in ratios),
            flush=True,
        )
    summary = {
        k: _summary([p["ratio"][k] for p in pairs if k in p["ratio"]])
        for k in SERVED_METRICS
        if any(k in p["ratio"] for p in pairs)
    }
    return {
        "requests": args.served_requests,
        "concurrency": args.served_concurrency,
        "input_len": args.served_input_len,
        "output_len": args.served_output_len,
        "pairs": pairs,
        "ratio": summary,
    }


# ---------------------------------------------------------------- tables for docs/PERFORMANCE.md


def markdown(result: dict) -> str:
    """The results as the markdown tables docs/PERFORMANCE.md shows (every pair's numbers)."""
    env = result["environment"]
    out = [
        f"{env['date']}; {env['machine']}; Python {env['python']}, vLLM {env['vllm']}, "
        f"torch {env['torch']}; engine threads: {env.get('engine_threads', '?')}",
        f"`{env['command']}`",
        "",
    ]
    if result.get("offline"):
        out += [
            "| configuration | probes on | targets | ratio with/without: median (min..max) "
            "| every pair: without → with tok/s |",
            "|---|---|---|---|---|",
        ]
        for cfg in result["offline"]:
            for s in cfg["sets"]:
                r = s["ratio"]
                pairs = ", ".join(
                    f"{p['without_tok_s']:.0f}→{p['with_tok_s']:.0f}" for p in s["pairs"]
                )
                out.append(
                    f"| {cfg['config']} | {s['categories']} | {s['targets_applied']} | "
                    f"**{r['median']:.3f}** ({r['min']:.3f}..{r['max']:.3f}) | {pairs} |"
                )
        out.append("")
        out.append(
            "vLLM's own preemption count during the forced-preemption runs: "
            + ", ".join(
                f"{c['config']} {c['vllm_preemptions']}"
                for c in result["offline"]
                if "preempt" in c["config"]
            )
        )
        out.append("")
    if result.get("served"):
        sv = result["served"]
        out += [
            f"Served: {sv['requests']} requests, concurrency {sv['concurrency']}, "
            f"{sv['input_len']} prompt / {sv['output_len']} output tokens (random dataset, seed 0).",
            "",
            "| metric | ratio with/without: median (min..max) | every pair: without → with |",
            "|---|---|---|",
        ]
        for k, r in sv["ratio"].items():
            pairs = ", ".join(f"{p['without'][k]:.2f}→{p['with'][k]:.2f}" for p in sv["pairs"])
            out.append(
                f"| {k} | **{r['median']:.3f}** ({r['min']:.3f}..{r['max']:.3f}) | {pairs} |"
            )
    return "\n".join(out)


# ---------------------------------------------------------------- main


def _environment() -> dict:
    import torch
    import vllm

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "python": platform.python_version(),
        "vllm": vllm.__version__,
        "torch": torch.__version__,
        "command": " ".join(["bench/bench_e2e_overhead.py", *sys.argv[1:]]),
        "engine_threads": _THREADS or "vLLM default (bound, one per core)",
    }


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("both", "offline", "served"), default="both")
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"of {', '.join(CONFIGS)}")
    ap.add_argument("--pairs", type=int, default=7, help="offline pairs per set (after warm-up)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed offline runs first")
    ap.add_argument("--num-prompts", type=int, default=0, help="override the prompt count")
    ap.add_argument(
        "--per-category",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also one pair set per category, on the --per-category-configs",
    )
    ap.add_argument("--per-category-configs", default="dense-eager")
    ap.add_argument(
        "--process-configs",
        default="moe-eager,moe-compiled",
        help="configurations measured as pairs of fresh engines (probes attached at model load)",
    )
    ap.add_argument("--process-pairs", type=int, default=5)
    ap.add_argument("--served-pairs", type=int, default=3)
    ap.add_argument("--served-requests", type=int, default=64)
    ap.add_argument("--served-concurrency", type=int, default=16)
    ap.add_argument("--served-input-len", type=int, default=64)
    ap.add_argument("--served-output-len", type=int, default=64)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the engine, unbound (0: vLLM's default, one bound thread per core)",
    )
    ap.add_argument("--quick", action="store_true", help="<= 3 minutes: proves it still works")
    ap.add_argument("--json", default="", help="write every number here too")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_client"]:
        return _client(argv[1:])
    if argv[:1] == ["_table"]:  # the markdown tables of a --json file
        print(markdown(json.loads(Path(argv[1]).read_text())))
        return 0
    if argv[:1] == ["_child"]:
        ap = argparse.ArgumentParser()
        ap.add_argument("--config", required=True, choices=sorted(CONFIGS))
        ap.add_argument("--pairs", type=int, required=True)
        ap.add_argument("--warmup", type=int, default=1)
        ap.add_argument("--num-prompts", type=int, default=0)
        ap.add_argument("--per-category", action="store_true")
        ap.add_argument("--out", required=True)
        ap.add_argument("--fixed", choices=("with", "without"), default=None)
        return _child(ap.parse_args(argv[1:]))
    args = build_parser().parse_args(argv)
    global _THREADS
    _THREADS = args.threads
    if args.quick:
        args.configs, args.pairs, args.per_category, args.num_prompts = "dense-eager", 1, False, 16
        args.process_pairs = 1
        args.served_pairs, args.served_requests, args.served_concurrency = 1, 8, 4
        args.served_output_len = 16
    result: dict = {"environment": _environment()}
    with tempfile.TemporaryDirectory(prefix="pm-bench-e2e-") as tmp:
        work = Path(tmp)
        if args.mode in ("both", "offline"):
            result["offline"] = offline(args, work)
        if args.mode in ("both", "served"):
            result["served"] = served(args, work)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
