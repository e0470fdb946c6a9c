"""kv_cache probes on real vLLM (CPU build): per-step block usage, prefix-cache hits and evictions of
cached blocks, each compared with vLLM's own numbers from the same run.

One workload does everything: 32 requests sharing a 200-token prefix (the CPU block is 128 tokens,
so every request can hit one cached block) and generating 200 tokens each in a 1 MiB KV cache (8
blocks of 128 tokens): the pool fills up, requests are preempted, and blocks full of generated
tokens are cached when freed and evicted when the pool hands them out again. vLLM's oracles, from
the workload's JSON: its per-step ``SchedulerStats`` (``kv_cache_usage``, prefix-cache stats) as they
reach its stat loggers, its Prometheus counters, its block count, and its KV cache events
(``BlockRemoved``: one hash per evicted cached block) counted from its ZMQ publisher.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from .workloads import PREEMPT

pytestmark = pytest.mark.vllm

KV = (
    "--model", "dense", "--num-prompts", "32", "--max-tokens", "200", "--kv-cache-mb", "1",
    "--shared-prefix-tokens", "200", "--prefix-caching", "--kv-events",
)  # fmt: skip
KV_KEYS = (
    "vllm.v1.core.sched.scheduler:Scheduler.schedule",
    "vllm.v1.core.sched.scheduler:Scheduler.update_from_output",
    "vllm.v1.core.kv_cache_manager:KVCacheManager.record_prefix_cache_stats",
    "vllm.v1.core.kv_cache_utils:FreeKVCacheBlockQueue.popleft_n",
    "vllm.v1.core.kv_cache_utils:FreeKVCacheBlockQueue.append_n",
    "vllm.v1.core.block_pool:BlockPool.touch",
)


def _ec(run) -> Path:
    dirs = run.process_dirs("enginecore-")
    assert len(dirs) == 1, [p.name for p in run.session_dir.iterdir()]
    return dirs[0]


def _csv(d: Path, table: str) -> list[dict]:
    with open(d / f"{table}.csv", newline="") as f:
        return list(csv.DictReader(f))


def _usage(run, point: str) -> list[dict]:
    rows = [r for r in _csv(_ec(run), "kv_cache_usage") if r["point"] == point]
    return sorted(rows, key=lambda r: int(r["step_id"]))


def _f(row: dict, col: str) -> float:
    return float(row[col])


@pytest.fixture(scope="module")
def kv_run(vllm_run):
    return vllm_run(*KV, profile=True)


def test_one_row_per_step_and_the_engines_block_count(kv_run):
    ec = _ec(kv_run)
    sched, update = _usage(kv_run, "schedule"), _usage(kv_run, "update")
    # Every schedule() call is one engine step (cpu_ops numbers the same steps, one span each).
    spans = [r for r in _csv(ec, "cpu_operations_timing") if r["operation"] == "schedule"]
    steps = sorted(int(r["step_id"]) for r in spans)
    assert [int(r["step_id"]) for r in sched] == steps == list(range(1, len(steps) + 1))
    assert [int(r["step_id"]) for r in update] == steps
    # Steps that scheduled work: their tokens add up to what cpu_ops saw.
    working = [r for r in sched if _f(r, "scheduled_tokens") > 0]
    assert len(working) == sum(1 for r in spans if float(r["num_tokens"]) > 0) > 0
    # The pool is the engine's: vLLM's block count from the EngineCore's start-up handshake.
    blocks = kv_run.result["num_gpu_blocks"]
    assert blocks == 8  # 1 MiB / (128 tokens x 1 KiB per token of the tiny dense model)
    for r in sched + update:
        assert _f(r, "total_blocks") == blocks
        assert _f(r, "used_blocks") + _f(r, "free_blocks") == blocks - 1  # the null block
        assert 0 <= _f(r, "cached_free_blocks") <= _f(r, "free_blocks")


def test_usage_equals_vllms_kv_cache_usage_on_the_same_steps(kv_run):
    """vLLM samples kv_cache_usage in update_from_output (make_stats): the `update` rows, in step
    order, against vLLM's SchedulerStats in the order they reached its loggers (one per step; the
    last ones may not arrive before generate() returns)."""
    theirs = kv_run.result["scheduler_stats"]
    update = _usage(kv_run, "update")
    assert len(update) - 3 <= len(theirs) <= len(update)
    assert len(theirs) > 100
    for mine, st in zip(update, theirs, strict=False):
        assert _f(mine, "usage_pct") == 100.0 * st["kv_cache_usage"], mine["step_id"]
    # Prefix-cache lookups are counted on the schedule row of the same step.
    sched = _usage(kv_run, "schedule")
    for mine, st in zip(sched, theirs, strict=False):
        assert _f(mine, "prefix_queries") == st["prefix_queries"], mine["step_id"]
        assert _f(mine, "prefix_hits") == st["prefix_hits"], mine["step_id"]
        assert _f(mine, "preempted_prefix_hits") == st["preempted_prefix_hits"]


def test_forced_preemption_fills_the_cache(kv_run, vllm_run):
    assert kv_run.metrics["vllm:num_preemptions"] > 0
    assert max(_f(r, "usage_pct") for r in _usage(kv_run, "schedule")) >= 90.0
    # The suite's standard forced-preemption workload too (no shared prefix).
    plain = vllm_run(*PREEMPT, profile=True)
    assert plain.metrics["vllm:num_preemptions"] > 0
    assert max(_f(r, "usage_pct") for r in _usage(plain, "schedule")) >= 90.0


def test_prefix_cache_hits_equal_vllms_counter(kv_run):
    sched = _usage(kv_run, "schedule")
    hits = sum(_f(r, "prefix_hits") for r in sched)
    queries = sum(_f(r, "prefix_queries") for r in sched)
    assert hits > 0
    assert hits == kv_run.metrics["vllm:prefix_cache_hits"]
    # vLLM's per-request view: the tokens each request found cached at its first admission.
    assert hits == sum(r["num_cached_tokens"] for r in kv_run.requests)
    assert queries == kv_run.metrics["vllm:prefix_cache_queries"]
    # The per-admission rows add up to the same (fresh requests; vLLM counts resumed ones apart).
    lookups = _csv(_ec(kv_run), "kv_prefix_cache_lookups")
    assert sum(_f(r, "hit_tokens") for r in lookups if r["preempted"] == "0") == hits
    assert sum(_f(r, "preempted_prefix_hits") for r in sched) == sum(
        _f(r, "hit_tokens") for r in lookups if r["preempted"] == "1"
    )


def test_evictions_equal_vllms_block_removed_events(kv_run):
    events = kv_run.result["kv_events"]
    assert events["gaps"] == 0 and events["batches"] > 0
    ec = _ec(kv_run)
    evictions = _csv(ec, "kv_cache_evictions")
    assert len(evictions) > 0
    assert len(evictions) == events["block_removed"]
    assert sum(_f(r, "evicted_blocks") for r in _usage(kv_run, "schedule")) == len(evictions)
    blocks = kv_run.result["num_gpu_blocks"]
    for r in evictions:
        assert 1 <= _f(r, "block_id") < blocks  # block 0 is the null block, never cached
        assert 0 <= _f(r, "idle_s") <= _f(r, "lifetime_s")


def test_with_vllms_statistics_off(kv_run, vllm_run):
    """The offline LLM's default (disable_log_stats=True): vLLM keeps no prefix-cache stats, yet the
    probes count the same way. Per-step numbers differ between runs (requests reach the EngineCore
    at slightly different steps), so this run is checked against what vLLM reports without its
    statistics: each request's num_cached_tokens (set at its first admission, scheduler.py
    PrefillStats), its KV events, its block count."""
    off = vllm_run(*KV, "--no-log-stats", profile=True)
    assert off.metrics == {} and off.result["scheduler_stats"] == []
    assert [r["output_token_ids"] for r in off.requests] == [
        r["output_token_ids"] for r in kv_run.requests
    ]
    ec = _ec(off)
    sched = _usage(off, "schedule")
    spans = [r for r in _csv(ec, "cpu_operations_timing") if r["operation"] == "schedule"]
    assert len(sched) == len(_usage(off, "update")) == len(spans) > 0
    assert all(_f(r, "total_blocks") == off.result["num_gpu_blocks"] for r in sched)
    assert max(_f(r, "usage_pct") for r in sched) >= 90.0
    hits = sum(_f(r, "prefix_hits") for r in sched)
    assert hits == sum(r["num_cached_tokens"] for r in off.requests) > 0
    evictions = _csv(ec, "kv_cache_evictions")
    assert len(evictions) == off.result["kv_events"]["block_removed"] > 0


def test_kv_probes_that_raise_change_nothing_in_generation(kv_run, vllm_run):
    faulty = vllm_run(*KV, profile=True, profilemate_args=("--fault-inject",))
    assert [r["output_token_ids"] for r in faulty.requests] == [
        r["output_token_ids"] for r in kv_run.requests
    ]
    assert faulty.metrics["vllm:num_preemptions"] > 0  # the run preempted and evicted as usual
    assert faulty.result["kv_events"]["block_removed"] > 0
    targets = json.loads((_ec(faulty) / "patch_status.json").read_text())["targets"]
    mine = {t["target"]: t for t in targets if t["category"] == "kv_cache"}
    # Every hook on these sites raised once and said so once (the log line is written when it
    # happens; the EngineCore's patch_status.json health may predate the last ones). Sites are
    # shared with other categories' targets (stacked), each with its own line.
    for key in KV_KEYS:
        assert mine[key]["state"] == "applied", key
        stacked = [t for t in targets if t["target"] == key and t["state"] == "applied"]
        assert faulty.log.count(f"probe {key} raised FaultInjected") == len(stacked), key
