"""Worker-side probes on real vLLM (CPU build, V1 runner): forward timing, CUDA-graph rows, encoder.

Compared with the engine's own numbers: the EngineCore's schedule rows (cpu_operations_timing.csv,
step id = vLLM's Scheduler.current_step, num_tokens = SchedulerOutput.total_num_scheduled_tokens)
and, for Whisper, the requests vLLM completed.
"""

from __future__ import annotations

import csv
import math

import pytest

from .workloads import DENSE, WHISPER

pytestmark = pytest.mark.vllm


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


def _engine_steps(run) -> dict[int, int]:
    """step id -> tokens, for every schedule() that scheduled tokens (vLLM's numbers)."""
    ec = _one(run, "enginecore")
    out = {}
    for r in _rows(ec, "cpu_operations_timing"):
        if r["operation"] == "schedule" and float(r["num_tokens"]) > 0:
            out[int(r["step_id"])] = int(float(r["num_tokens"]))
    assert out, "no engine steps recorded"
    return out


def _empty(v: str) -> bool:
    return v == "" or (v.lower() == "nan") or math.isnan(float(v))


def test_forward_rows_match_engine_steps(vllm_run):
    run = vllm_run(*DENSE, profile=True)
    steps = _engine_steps(run)
    w = _one(run, "worker")
    rows = _rows(w, "forward_pass_timing")
    serve = [r for r in rows if r["run"] == "serve"]
    other = [r for r in rows if r["run"] != "serve"]
    # One serving row per engine step that scheduled tokens, with the engine's token count.
    assert sorted(int(r["step_id"]) for r in serve) == sorted(steps)
    for r in serve:
        assert int(float(r["num_tokens"])) == steps[int(r["step_id"])], r
        assert r["phase"] in ("prefill", "decode", "mixed")
        assert float(r["forward_time_ms"]) > 0
        assert _empty(r["gpu_time_ms"]), r  # CPU: no device time
    # Non-serving runs carry no step. (Eager CPU runs make none: CPUModelRunner.warming_up_model
    # returns at once under CompilationMode.NONE and the CPU worker has no profile run; the
    # --compile test below sees the warm-up dummy runs.)
    assert all(r["step_id"] == "" for r in other)
    # 32 prompts of 16 tokens: the first step prefills, the last ones decode.
    first = min(serve, key=lambda r: int(r["step_id"]))
    assert first["phase"] in ("prefill", "mixed")
    assert any(r["phase"] == "decode" for r in serve)


def _engine_scheduled_reqs(run) -> dict[int, int]:
    """step id -> requests given tokens, as the EngineCore's Scheduler saw them (batch_utilization)."""
    ec = _one(run, "enginecore")
    return {
        int(r["step_id"]): int(float(r["scheduled_reqs"]))
        for r in _rows(ec, "batch_utilization")
        if float(r["scheduled_tokens"]) > 0
    }


def test_cuda_graph_rows_on_cpu(vllm_run):
    run = vllm_run(*DENSE, profile=True)
    steps = _engine_steps(run)
    reqs = _engine_scheduled_reqs(run)
    assert sorted(reqs) == sorted(steps)
    w = _one(run, "worker")
    tl = _rows(w, "cuda_graph_timeline")
    assert sorted(int(r["step_id"]) for r in tl) == sorted(steps)  # one per forward
    for r in tl:
        assert r["runtime_mode"] == "NONE"
        assert r["eager_reason"] == "platform without static graphs"
        assert r["graph_action"] == "eager"
        assert int(float(r["num_tokens"])) == steps[int(r["step_id"])]
        assert r["num_padded_tokens"] == r["num_tokens"]  # no padding without graphs
        # The worker's request count (the num_reqs vLLM dispatched with) is the engine's; the eager
        # descriptor carries none of its own.
        assert int(float(r["num_reqs"])) == reqs[int(r["step_id"])], r
        assert _empty(r["descriptor_num_reqs"]), r
    assert max(int(float(r["num_reqs"])) for r in tl) > 1  # real batches, not a constant 1
    assert _rows(w, "cuda_graph_captures") == []
    assert _rows(w, "cuda_graph_usage") == []


def test_whisper_encoder_rows(vllm_run):
    run = vllm_run(*WHISPER, profile=True)
    steps = _engine_steps(run)
    w = _one(run, "worker")
    enc = _rows(w, "encoder_decoder_timing")
    assert enc, "no encoder rows"
    # Every clip of every request was encoded exactly once, inside a serving step.
    assert sum(int(float(r["num_items"])) for r in enc) == len(run.requests) == 8
    for r in enc:
        assert int(r["step_id"]) in steps
        assert r["component"] == "encoder"
        assert float(r["num_tokens"]) > 0
        assert _empty(r["gpu_time_ms"])
    # The forward rows of an encoder-decoder run match the engine too.
    serve = [r for r in _rows(w, "forward_pass_timing") if r["run"] == "serve"]
    assert sorted(int(r["step_id"]) for r in serve) == sorted(steps)


def test_compiled_model_starts_and_is_timed(vllm_run):
    """vLLM's default compilation (Dynamo, fullgraph=True): no graph break, engine starts."""
    run = vllm_run(*DENSE, "--compile", profile=True)
    steps = _engine_steps(run)
    w = _one(run, "worker")
    serve = [r for r in _rows(w, "forward_pass_timing") if r["run"] == "serve"]
    assert sorted(int(r["step_id"]) for r in serve) == sorted(steps)
    assert len(_rows(w, "cuda_graph_timeline")) == len(serve)
    # The compile warm-up (CPUModelRunner.warming_up_model -> profile_run -> _dummy_run(is_profile=True))
    # is marked, stepless.
    other = [r for r in _rows(w, "forward_pass_timing") if r["run"] != "serve"]
    assert other and all(r["run"] == "profile" and r["step_id"] == "" for r in other), other


def test_fault_injection_leaves_tokens_identical(vllm_run):
    plain = vllm_run(*DENSE)
    faulty = vllm_run(*DENSE, profile=True, env={"PROFILEMATE_FAULT_INJECT": "1"})
    assert [r["output_token_ids"] for r in faulty.requests] == [
        r["output_token_ids"] for r in plain.requests
    ]
