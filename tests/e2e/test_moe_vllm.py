"""MoE expert load on real vLLM (CPU build, the tiny Qwen2-MoE fixture: 2 layers, 8 experts, top-2,
a shared expert), in enforce_eager and in vLLM's default compilation (Dynamo, fullgraph=True).

Oracle: vLLM's scheduler. Every token the EngineCore schedules goes through each MoE layer's
router once, so per layer the summed ``activation_count`` must equal the scheduled tokens (the
EngineCore's ``schedule`` rows, ``SchedulerOutput.total_num_scheduled_tokens``) times top_k, and
the co-selected pairs one per token (C(2, 2)). Dummy / warm-up forwards (the compiled run makes
some) must not count. The generated tokens must be those of the same workload without ProfileMate.
"""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from .workloads import MOE

pytestmark = pytest.mark.vllm

TOP_K = 2
EXPERTS = 8
LAYERS = {0, 1}
MODES = {"eager": (), "compile": ("--compile",)}
# Requests of ~215 tokens (2 blocks of 128) and a 1 MiB KV cache (1 KiB per token, 8 blocks): the
# scheduler preempts, and the preempted requests' tokens are scheduled -- and routed -- again.
MOE_PREEMPT = ("--model", "moe", "--num-prompts", "16", "--max-tokens", "200", "--kv-cache-mb", "1")


def _rows(d, name):
    p = d / f"{name}.csv"
    if not p.is_file():
        return []
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def _one(run, prefix):
    dirs = run.process_dirs(prefix)
    assert len(dirs) == 1, dirs
    return dirs[0]


def _scheduled_tokens(run) -> int:
    ec = _one(run, "enginecore")
    total = sum(
        int(float(r["num_tokens"]))
        for r in _rows(ec, "cpu_operations_timing")
        if r["operation"] == "schedule"
    )
    assert total > 0
    return total


def _per_layer(rows, column) -> Counter:
    c: Counter = Counter()
    for r in rows:
        c[int(float(r["layer_idx"]))] += int(float(r[column]))
    return c


def _check_exact(run) -> int:
    tokens = _scheduled_tokens(run)
    w = _one(run, "worker")
    act = _rows(w, "moe_expert_activations")
    assert act, "no moe_expert_activations rows"
    assert _per_layer(act, "activation_count") == {layer: tokens * TOP_K for layer in LAYERS}
    assert {int(float(r["expert_id"])) for r in act} <= set(range(EXPERTS))
    # Intervals: increments over disjoint, ordered step ranges.
    ranges = sorted({(int(float(r["step_first"])), int(r["step_id"])) for r in act})
    assert all(a <= b for a, b in ranges)
    assert all(prev[1] < nxt[0] for prev, nxt in zip(ranges, ranges[1:], strict=False)), ranges
    imb = _rows(w, "moe_load_imbalance")
    assert _per_layer(imb, "routed_tokens") == {layer: tokens * TOP_K for layer in LAYERS}
    for r in imb:
        assert float(r["max_mean_ratio"]) >= 1.0
        assert float(r["max_count"]) >= float(r["mean_count"])
    co = _rows(w, "moe_expert_coselection")
    assert _per_layer(co, "coselection_count") == {layer: tokens for layer in LAYERS}
    for r in co:
        assert 0 <= int(float(r["expert_id_1"])) < int(float(r["expert_id_2"])) < EXPERTS
    return tokens


@pytest.mark.parametrize("mode", sorted(MODES))
def test_counts_exact(vllm_run, mode):
    run = vllm_run(*MOE, *MODES[mode], profile=True)
    _check_exact(run)
    path = "eager-python" if mode == "eager" else "compiled-graph"
    assert f"path {path}" in run.log


@pytest.mark.parametrize("mode", sorted(MODES))
def test_generated_tokens_identical(vllm_run, mode):
    on = vllm_run(*MOE, *MODES[mode], profile=True)
    off = vllm_run(*MOE, *MODES[mode])
    got = [r["output_token_ids"] for r in on.requests]
    want = [r["output_token_ids"] for r in off.requests]
    assert len(want) == 32 and got == want


def test_counts_exact_with_preemption(vllm_run):
    run = vllm_run(*MOE_PREEMPT, profile=True)
    ec = _one(run, "enginecore")
    assert _rows(ec, "preemption_events"), "the workload did not preempt"
    _check_exact(run)  # recomputed tokens are routed again and counted again


def test_patch_status_lists_the_moe_targets(vllm_run):
    run = vllm_run(*MOE, profile=True)
    status = json.loads((_one(run, "worker") / "patch_status.json").read_text())
    moe = {t["qualname"]: t["state"] for t in status["targets"] if t["category"] == "moe"}
    assert moe["Worker.load_model"] == "applied"
    assert moe["BaseRouter.set_capture_fn"] == "applied"
