"""A short offline vLLM workload on a tiny local model — the built-in default job.

Runs ``vllm.LLM.generate`` on N prompts and writes what vLLM itself reports (generated token ids,
per-request stats, and vLLM's own Prometheus counters such as ``vllm:num_preemptions``) to a JSON
file, so tests can compare ProfileMate's numbers with vLLM's. It does not import ProfileMate:
run it under ``profilemate run -- python -m profilemate.demo.workload ...`` to profile it.

The vLLM engine is the CPU build on this machine; ``enforce_eager`` keeps start-up short (no
torch.compile) and the KV cache size is given in bytes so preemption can be forced on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

_WORDS = (
    "the quick brown fox jumps over the lazy dog while a profiler measures what the program "
    "really does and vLLM schedules requests into batches of key value cache blocks"
).split()


def make_prompts(n: int, min_words: int = 4, max_words: int = 24, seed: int = 0) -> list[str]:
    """Deterministic prompts of varied length (varied prefill sizes make batches interesting)."""
    import random

    rng = random.Random(seed)
    return [
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(min_words, max_words)))
        for _ in range(n)
    ]


def make_shared_prefix_prompts(n: int, prefix_tokens: int, seed: int = 0) -> list[list[int]]:
    """Token-id prompts that share their first ``prefix_tokens`` ids, then differ (prefix caching:
    the CPU build's KV block is 128 tokens, so a hit needs at least 129 shared tokens)."""
    import random

    rng = random.Random(seed)
    prefix = [rng.randrange(10, 250) for _ in range(prefix_tokens)]
    return [prefix + [rng.randrange(10, 250) for _ in range(rng.randint(4, 24))] for _ in range(n)]


AUDIO_RATE = 16000  # the tiny Whisper's feature extractor rate: no resampling library is needed
WHISPER_DECODER_PROMPT = "<|startoftranscript|><|en|><|transcribe|><|notimestamps|>"


def make_audio_prompts(n: int, seed: int = 0) -> list[dict]:
    """Encoder-decoder prompts: a synthetic sine clip (0.5-1.9 s) per request for the encoder."""
    import numpy as np

    prompts = []
    for i in range(n):
        secs = 0.5 + 0.1 * ((i + seed) % 15)
        t = np.arange(int(AUDIO_RATE * secs), dtype=np.float32) / AUDIO_RATE
        clip = (0.3 * np.sin(2 * np.pi * 110.0 * (1 + i % 7) * t)).astype(np.float32)
        prompts.append(
            {
                "encoder_prompt": {"prompt": "", "multi_modal_data": {"audio": (clip, AUDIO_RATE)}},
                "decoder_prompt": WHISPER_DECODER_PROMPT,
            }
        )
    return prompts


def _is_encoder_decoder(model_dir: str) -> bool:
    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(cfg.get("is_encoder_decoder"))


def _metrics(llm) -> dict:
    """vLLM's own counters and gauges (needs disable_log_stats=False)."""
    out: dict[str, float] = {}
    try:
        for m in llm.get_metrics():
            value = getattr(m, "value", None)
            if isinstance(value, (int, float)):
                out[m.name] = out.get(m.name, 0) + value
            elif hasattr(m, "count") and isinstance(m.count, (int, float)):
                out[m.name + ":count"] = out.get(m.name + ":count", 0) + m.count
                out[m.name + ":sum"] = out.get(m.name + ":sum", 0) + getattr(m, "sum", 0)
    except Exception as e:  # metrics are best-effort; the generation result is what matters
        out["_error"] = repr(e)
    return out


def _request_metrics(output) -> dict | None:
    """vLLM's own per-request timestamps and counts (RequestStateStats; only with log stats on):
    ``arrival_time`` is wall-clock, the ``*_ts`` are the EngineCore's ``time.monotonic()``."""
    m = getattr(output, "metrics", None)
    if m is None:
        return None
    keys = ("arrival_time", "queued_ts", "scheduled_ts", "first_token_ts", "last_token_ts",
            "num_preemptions", "num_generation_tokens")  # fmt: skip
    return {k: getattr(m, k) for k in keys if isinstance(getattr(m, k, None), int | float)}


def _capture_scheduler_stats(llm) -> list[dict]:
    """vLLM's own per-step SchedulerStats as they reach its stat loggers in this process (needs
    disable_log_stats=False): one entry per EngineCore step, in step order, for tests that compare
    per-step numbers (e.g. kv_cache_usage) with a profiler's. The last steps' may not arrive
    before generate() returns."""
    out: list[dict] = []
    mgr = getattr(getattr(llm, "llm_engine", None), "logger_manager", None)
    if mgr is None:
        return out
    record = mgr.record

    def capture(*args, **kwargs):
        st = kwargs.get("scheduler_stats", args[0] if args else None)
        if st is not None:
            p = st.prefix_cache_stats
            out.append(
                {
                    "kv_cache_usage": st.kv_cache_usage,
                    "prefix_queries": p.queries,
                    "prefix_hits": p.hits,
                    "prefix_requests": p.requests,
                    "preempted_prefix_hits": p.preempted_hits,
                    "num_running_reqs": st.num_running_reqs,
                }
            )
        return record(*args, **kwargs)

    mgr.record = capture
    return out


class _KvEventCounter:
    """vLLM's KV cache events (BlockStored / BlockRemoved / AllBlocksCleared), counted as its ZMQ
    publisher sends them: the publisher connects to this SUB socket (a tcp endpoint that is not a
    wildcard is connected to, not bound, by vLLM's ZmqEventPublisher)."""

    def __init__(self) -> None:
        import threading

        import zmq

        self._ctx = zmq.Context()
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        port = self._sub.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.counts = {"batches": 0, "block_stored": 0, "block_removed": 0, "all_cleared": 0}
        self.next_seq = 0
        self.gaps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import msgspec
        from vllm.distributed.kv_events import (
            AllBlocksCleared,
            BlockRemoved,
            BlockStored,
            KVEventBatch,
        )

        dec = msgspec.msgpack.Decoder(type=KVEventBatch)
        while not self._stop.is_set():
            if not self._sub.poll(100):
                continue
            _topic, seq_bytes, payload = self._sub.recv_multipart()
            seq = int.from_bytes(seq_bytes, "big")
            self.gaps += seq != self.next_seq
            self.next_seq = seq + 1
            self.counts["batches"] += 1
            for e in dec.decode(payload).events:
                if isinstance(e, BlockRemoved):
                    self.counts["block_removed"] += len(e.block_hashes)
                elif isinstance(e, BlockStored):
                    self.counts["block_stored"] += len(e.block_hashes)
                elif isinstance(e, AllBlocksCleared):
                    self.counts["all_cleared"] += 1

    def finish(self, quiet_s: float = 1.0) -> dict:
        import time

        last = -1
        while last != self.counts["batches"]:  # until no batch arrived for quiet_s
            last = self.counts["batches"]
            time.sleep(quiet_s)
        self._stop.set()
        self._thread.join()
        self._sub.close(linger=0)
        self._ctx.term()
        return {**self.counts, "gaps": self.gaps}


def run(args: argparse.Namespace) -> dict:
    from vllm import LLM, SamplingParams

    llm_kwargs = dict(
        model=str(args.model),
        enforce_eager=not args.compile,
        max_model_len=args.max_model_len,
        kv_cache_memory_bytes=int(args.kv_cache_mb * (1 << 20)),
        seed=args.seed,
        dtype="float32",
        disable_log_stats=not args.log_stats,
        max_num_seqs=args.max_num_seqs,
    )
    if args.prefix_caching is not None:
        llm_kwargs["enable_prefix_caching"] = args.prefix_caching
    if args.max_num_batched_tokens:
        llm_kwargs["max_num_batched_tokens"] = args.max_num_batched_tokens
    encdec = _is_encoder_decoder(str(args.model))
    if encdec:
        # Whisper: one clip per request; the decoder window is max_target_positions (448).
        llm_kwargs["limit_mm_per_prompt"] = {"audio": 1}
        llm_kwargs["max_model_len"] = min(args.max_model_len, 448)
    kv_events = None
    if args.kv_events:
        kv_events = _KvEventCounter()
        llm_kwargs["kv_events_config"] = {
            "enable_kv_cache_events": True,
            "publisher": "zmq",
            "endpoint": kv_events.endpoint,
        }
    t0 = time.monotonic()
    llm = LLM(**llm_kwargs)
    t1 = time.monotonic()
    scheduler_stats = _capture_scheduler_stats(llm) if args.log_stats else []
    if encdec:
        prompts = make_audio_prompts(args.num_prompts, seed=args.seed)
    elif args.shared_prefix_tokens:
        prompts = [
            {"prompt_token_ids": ids}
            for ids in make_shared_prefix_prompts(
                args.num_prompts, args.shared_prefix_tokens, seed=args.seed
            )
        ]
    else:
        prompts = make_prompts(args.num_prompts, seed=args.seed)
    params = SamplingParams(
        max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed, ignore_eos=True
    )
    outputs = llm.generate(prompts, params, use_tqdm=False)
    t2 = time.monotonic()
    requests = []
    for o in outputs:
        c = o.outputs[0]
        requests.append(
            {
                "request_id": o.request_id,
                "prompt_tokens": len(o.prompt_token_ids or []),
                "output_token_ids": list(c.token_ids),
                "finish_reason": c.finish_reason,
                "num_cached_tokens": o.num_cached_tokens,
                "metrics": _request_metrics(o),
            }
        )
    import torch
    import vllm

    return {
        "vllm_version": vllm.__version__,
        "torch_version": torch.__version__,
        "python": sys.version.split()[0],
        "model": str(args.model),
        "config": {k: v for k, v in llm_kwargs.items() if k != "model"},
        "encoder_decoder": encdec,
        "num_prompts": len(prompts),
        "init_s": round(t1 - t0, 3),
        "generate_s": round(t2 - t1, 3),
        "requests": requests,
        "metrics": _metrics(llm) if args.log_stats else {},
        # The engine's KV cache size in blocks, as the EngineCore reported it at start-up.
        "num_gpu_blocks": llm.llm_engine.vllm_config.cache_config.num_gpu_blocks,
        "scheduler_stats": scheduler_stats,
        "kv_events": kv_events.finish() if kv_events is not None else None,
    }


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Run a short offline vLLM workload on a tiny model.")
    ap.add_argument(
        "--model", default="dense", help="a tiny model name (dense, moe, whisper) or a model folder"
    )
    ap.add_argument("--num-prompts", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--max-model-len", type=int, default=512)
    ap.add_argument("--max-num-seqs", type=int, default=32)
    ap.add_argument("--max-num-batched-tokens", type=int, default=0)
    ap.add_argument("--kv-cache-mb", type=float, default=64.0, help="KV cache size in MiB")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-json", type=Path, default=None, help="write results here")
    ap.add_argument(
        "--log-stats",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="vLLM's own statistics (the offline LLM's default is off; tests compare with them)",
    )
    ap.add_argument(
        "--compile",
        action="store_true",
        help="vLLM's default compilation instead of enforce_eager (slower start-up)",
    )
    ap.add_argument(
        "--prefix-caching",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force prefix caching on or off (default: vLLM's)",
    )
    ap.add_argument(
        "--shared-prefix-tokens",
        type=int,
        default=0,
        help="token-id prompts sharing this many leading tokens (prefix-cache hits)",
    )
    ap.add_argument(
        "--kv-events",
        action="store_true",
        help="count vLLM's KV cache events (BlockStored/BlockRemoved) from its ZMQ publisher",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not os.path.isdir(str(args.model)):
        from profilemate.demo.models import ensure_model

        args.model = ensure_model(str(args.model))
    result = run(args)
    if args.out_json:
        args.out_json.write_text(json.dumps(result, indent=1))
    n_tokens = sum(len(r["output_token_ids"]) for r in result["requests"])
    m = result["metrics"]
    stats = (
        f"preemptions reported by vLLM: {int(m.get('vllm:num_preemptions', 0))}"
        if m
        else "vLLM's own statistics off"
    )
    print(
        f"vLLM {result['vllm_version']} (torch {result['torch_version']}): "
        f"{result['num_prompts']} prompts -> {n_tokens} tokens generated in "
        f"{result['generate_s']:.2f} s (engine start {result['init_s']:.1f} s); {stats}"
    )
    return 0


if __name__ == "__main__":  # vLLM's CPU platform spawns its workers: the guard is required
    sys.exit(main())
