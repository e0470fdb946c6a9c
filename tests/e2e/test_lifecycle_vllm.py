"""Request lifecycle and the new CPU operations on real vLLM (CPU build), compared with what vLLM
itself reports: the workload JSON's token counts, vLLM's per-request RequestStateStats
(``RequestOutput.metrics``, log stats on) and its ``vllm:num_preemptions`` counter.

The OpenAI server's side (async renderer rows, AsyncLLM's process_outputs) is in
test_serve_vllm.py, which already runs a server.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from .workloads import DENSE, PREEMPT

pytestmark = pytest.mark.vllm

NO_STATS = (*DENSE, "--no-log-stats")


def _one(run, prefix: str) -> Path:
    dirs = run.process_dirs(prefix)
    assert len(dirs) == 1, (prefix, [p.name for p in run.session_dir.iterdir()])
    return dirs[0]


def _rows(d: Path, table: str) -> list[dict]:
    p = d / f"{table}.csv"
    if not p.exists():
        return []
    with p.open(newline="") as f:
        return [r for r in csv.DictReader(f) if None not in r.values()]


def _external(internal_id: str) -> str:
    return internal_id.rsplit("-", 1)[0]  # InputProcessor.assign_request_id: "<id>-<8 hex>"


def _clock(d: Path) -> dict:
    return json.loads((d / "summary.json").read_text())["clock"]


def _check_lifecycle(run, *, with_stats: bool) -> dict[str, dict]:
    api, ec = _one(run, "api-"), _one(run, "enginecore-")
    want = {r["request_id"]: r for r in run.requests}
    ec_rows = _rows(ec, "request_lifecycle")
    api_rows = _rows(api, "request_lifecycle")
    # One row per request in each process, every request finished (max_tokens reached).
    for rows in (ec_rows, api_rows):
        got = {}
        for r in rows:
            ext = _external(r["request_id"])
            assert ext not in got, f"two rows for {ext}"
            got[ext] = r
        assert set(got) == set(want)
        for ext, r in got.items():
            assert r["finish_reason"] == want[ext]["finish_reason"] == "length"
            assert int(r["prompt_tokens"]) == want[ext]["prompt_tokens"]
            assert int(r["output_tokens"]) == len(want[ext]["output_token_ids"])
            a, q, ft, f = (
                float(r[k]) for k in ("arrival_s", "queued_s", "first_token_s", "finish_s")
            )
            assert a <= q <= ft <= f, r
    ec_by = {_external(r["request_id"]): r for r in ec_rows}
    for r in ec_by.values():
        fs = float(r["first_scheduled_s"])
        assert float(r["arrival_s"]) <= float(r["queued_s"]) <= fs <= float(r["first_token_s"])
        assert int(float(r["first_scheduled_step"])) <= int(float(r["first_token_step"]))
        assert int(float(r["first_token_step"])) <= int(r["step_id"])
    # The times are on the core's clock: the rows' own timestamp_sec (session axis) is finish_s.
    start = _clock(ec)["session_start_ns"] / 1e9
    for r in ec_rows:
        assert abs(float(r["timestamp_sec"]) - (float(r["finish_s"]) - start)) < 1e-3
    # arrival_s is vLLM's wall-clock arrival moved to CLOCK_MONOTONIC with the session's pair.
    c = _clock(api)
    wall_minus_mono = (c["realtime_ns"] - c["monotonic_ns"]) / 1e9
    if with_stats:
        for ext, r in ec_by.items():
            m = want[ext]["metrics"]
            assert abs(float(r["arrival_s"]) - (m["arrival_time"] - wall_minus_mono)) < 0.05
            # vLLM's own EngineCore events (monotonic): QUEUED at add_request, the first
            # SCHEDULED at the start of schedule(), the first token at update_from_output's
            # EngineCoreOutputs; ours are taken by the probes around the same calls.
            assert abs(float(r["queued_s"]) - m["queued_ts"]) < 0.05
            assert abs(float(r["first_scheduled_s"]) - m["scheduled_ts"]) < 0.05
            assert abs(float(r["first_token_s"]) - m["first_token_ts"]) < 0.05
            assert int(r["num_preemptions"]) == m["num_preemptions"]
    return ec_by


def test_lifecycle_rows_match_vllm_in_a_forced_preemption_run(vllm_run):
    run = vllm_run(*PREEMPT, profile=True)
    ec_by = _check_lifecycle(run, with_stats=True)
    preempted = sum(int(r["num_preemptions"]) for r in ec_by.values())
    assert preempted > 0
    assert preempted == run.metrics["vllm:num_preemptions"]


def test_lifecycle_without_vllm_statistics(vllm_run):
    run = vllm_run(*NO_STATS, profile=True)
    assert run.metrics == {}
    ec_by = _check_lifecycle(run, with_stats=False)
    assert all(int(r["num_preemptions"]) == 0 for r in ec_by.values())


def test_api_rows_join_engine_steps_by_engine_timestamp(vllm_run):
    run = vllm_run(*NO_STATS, profile=True)
    api, ec = _one(run, "api-"), _one(run, "enginecore-")
    ec_ops = _rows(ec, "cpu_operations_timing")
    upd = [r for r in ec_ops if r["operation"] == "update_from_output"]
    step_of = {
        r["engine_timestamp"]: int(r["step_id"]) for r in upd if r["engine_timestamp"] != "0"
    }
    proc = [r for r in _rows(api, "cpu_operations_timing") if r["operation"] == "process_outputs"]
    # LLMEngine.step: one process_outputs per engine output batch; each joins one engine step.
    assert proc and all(r["engine_timestamp"] in step_of for r in proc)
    ec_lc = {r["request_id"]: r for r in _rows(ec, "request_lifecycle")}
    for r in _rows(api, "request_lifecycle"):
        e = ec_lc[r["request_id"]]
        assert step_of[r["first_token_engine_timestamp"]] == int(float(e["first_token_step"]))
        assert step_of[r["finish_engine_timestamp"]] == int(e["step_id"])


@pytest.mark.parametrize("args", [DENSE, NO_STATS], ids=["log-stats", "no-log-stats"])
def test_new_cpu_operations_have_plausible_counts(vllm_run, args):
    run = vllm_run(*args, profile=True)
    n = len(run.requests)
    api, ec, wk = _one(run, "api-"), _one(run, "enginecore-"), _one(run, "worker-0-")
    ops_ec = _rows(ec, "cpu_operations_timing")
    sched = [r for r in ops_ec if r["operation"] == "schedule"]
    upd = [r for r in ops_ec if r["operation"] == "update_from_output"]
    # update_from_output: one per schedule(), same step ids and tokens.
    assert [(r["step_id"], r["num_tokens"]) for r in upd] == [
        (r["step_id"], r["num_tokens"]) for r in sched
    ]
    with_tokens = {int(r["step_id"]) for r in sched if int(r["num_tokens"]) > 0}
    ops_wk = _rows(wk, "cpu_operations_timing")

    def steps_of(op: str) -> list[int]:
        return [int(r["step_id"]) for r in ops_wk if r["operation"] == op and r["step_id"] != ""]

    # _update_states runs on every execute_model; the rest only on steps with tokens.
    assert steps_of("update_states") == steps_of("execute_model")
    for op in ("prepare_inputs", "preprocess", "sample"):
        assert sorted(steps_of(op)) == sorted(with_tokens), op
    tok = {int(r["step_id"]): int(r["num_tokens"]) for r in sched}
    for r in ops_wk:
        if r["operation"] in ("update_states", "prepare_inputs", "preprocess") and r["step_id"]:
            assert int(r["num_tokens"]) == tok[int(r["step_id"])]
    # sample: one logits row per request that samples in the step (no spec decode here); the
    # total over the run is every generated token.
    total_out = sum(len(r["output_token_ids"]) for r in run.requests)
    assert (
        sum(int(r["num_tokens"]) for r in ops_wk if r["operation"] == "sample" and r["step_id"])
        == total_out
    )
    # API: one render and one tokenize per prompt (the offline LLM renders prompt by prompt),
    # process_outputs once per engine output batch.
    # (vLLM's start-up also renders one chat once: BaseRenderer.warmup's chat-template warm-up,
    # which the tiny model, without a chat template, leaves before tokenizing.)
    ops_api = _rows(api, "cpu_operations_timing")
    count = {}
    for r in ops_api:
        count[r["context"]] = count.get(r["context"], 0) + 1
    assert count["BaseRenderer.render_cmpl"] == n
    assert count["BaseRenderer.tokenize_prompts"] == count["InputProcessor.process_inputs"] == n
    assert count.get("BaseRenderer.render_chat", 0) <= 1
    count["process_outputs"] = count["OutputProcessor.process_outputs"]
    assert count["process_outputs"] >= max(len(r["output_token_ids"]) for r in run.requests)
    for r in ops_api + ops_ec + ops_wk:
        assert float(r["duration_ms"]) > 0 and not math.isnan(float(r["duration_ms"]))
