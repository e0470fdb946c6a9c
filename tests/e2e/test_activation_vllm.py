"""Real vLLM (CPU build) under `profilemate run`: every process is patched, steps line up, and
probes that raise change nothing in what vLLM generates.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from .workloads import DENSE

pytestmark = pytest.mark.vllm

INPUT_KEY = "vllm.v1.engine.input_processor:InputProcessor.process_inputs"
SCHED_KEY = "vllm.v1.core.sched.scheduler:Scheduler.schedule"
WORKER_KEY = "vllm.v1.worker.gpu_worker:Worker.execute_model"
LIFECYCLE_KEYS = (
    "vllm.v1.engine.core:EngineCore.shutdown",
    "vllm.v1.executor.multiproc_executor:WorkerProc.shutdown",
)
# Targets added for issue 9 (cpu_ops, request_lifecycle) whose hooks run in this workload.
NEW_HOOKED_KEYS = (
    "vllm.v1.core.sched.scheduler:Scheduler.update_from_output",
    "vllm.v1.core.sched.scheduler:Scheduler.add_request",
    "vllm.v1.core.sched.scheduler:Scheduler._free_request",
    "vllm.v1.engine.output_processor:OutputProcessor.process_outputs",
    "vllm.v1.engine.output_processor:OutputProcessor.add_request",
    "vllm.renderers.base:BaseRenderer.render_cmpl",
    "vllm.renderers.base:BaseRenderer.tokenize_prompts",
    "vllm.v1.worker.gpu_model_runner:GPUModelRunner._update_states",
    "vllm.v1.worker.gpu_model_runner:GPUModelRunner._prepare_inputs",
    "vllm.v1.worker.gpu_model_runner:GPUModelRunner._preprocess",
    "vllm.v1.sample.sampler:Sampler.forward",
)
NUM_PROMPTS, MAX_TOKENS = 32, 16


def _one(run, prefix: str) -> Path:
    dirs = run.process_dirs(prefix)
    assert len(dirs) == 1, (prefix, [p.name for p in run.session_dir.iterdir()])
    return dirs[0]


def _status(d: Path) -> dict[str, dict]:
    return {t["target"]: t for t in json.loads((d / "patch_status.json").read_text())["targets"]}


def _targets(d: Path) -> list[dict]:
    return json.loads((d / "patch_status.json").read_text())["targets"]


def _rows(d: Path) -> list[dict]:
    with open(d / "cpu_operations_timing.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_process_patched_and_one_schedule_span_per_step(vllm_run):
    run = vllm_run(*DENSE, profile=True)
    assert run.session_dir is not None, run.log[-4000:]
    api, ec, wk = _one(run, "api-"), _one(run, "enginecore-"), _one(run, "worker-0-")
    # vLLM may also run a helper (`python -m vllm.model_executor.models.registry` when its model
    # info cache is cold): its own folder, labelled as a helper, with no rows.
    roles = {p.name.split("-")[0] for p in run.process_dirs()}
    assert roles - {"helper"} == {"api", "enginecore", "worker"}
    for helper in run.process_dirs("helper-"):
        assert not list(helper.glob("*.csv")), helper

    # patch_status.json: each process has its own target applied.
    assert _status(api)[INPUT_KEY]["state"] == "applied"
    assert _status(ec)[SCHED_KEY]["state"] == "applied"
    assert _status(wk)[WORKER_KEY]["state"] == "applied"
    for d in (api, ec, wk):
        st = _status(d)
        assert st["vllm.v1.engine.processor:Processor.process_inputs"]["state"] == "skipped"
        assert not any(t["state"] == "failed" for t in st.values()), st
        assert all((t["health"] or {}).get("errors", 0) == 0 for t in st.values())

    # API: one process_inputs span per request (and the other API operations: render, tokenize,
    # process_outputs; tests/e2e/test_lifecycle_vllm.py counts those).
    api_rows = _rows(api)
    assert [r["operation"] for r in api_rows].count("process_inputs") == NUM_PROMPTS

    # EngineCore: one schedule span per engine step, step ids 1..N.
    sched = [r for r in _rows(ec) if r["operation"] == "schedule"]
    steps = [int(r["step_id"]) for r in sched]
    n = len(steps)
    assert steps == list(range(1, n + 1))
    assert n >= MAX_TOKENS  # at least one step per generated token
    assert all(float(r["duration_ms"]) > 0 for r in sched)
    tokens = {int(r["step_id"]): int(r["num_tokens"]) for r in sched}
    # Independent counts from vLLM's own metrics. vLLM 0.32.0 observes vllm:iteration_tokens_total
    # once per engine step that produced request outputs (LLMEngine.step); a step that schedules
    # tokens produces outputs here, since every prompt fits one prefill (4096-token budget), while
    # EngineCore also runs a last empty step to retire finished requests, which vLLM does not count.
    m = run.metrics
    assert sum(1 for t in tokens.values() if t > 0) == m["vllm:iteration_tokens_total:count"]
    # Scheduled tokens: every prompt token once, plus one per decode step of each request (the
    # first generated token comes out of the prefill step).
    assert (
        sum(tokens.values()) == m["vllm:prompt_tokens"] + m["vllm:generation_tokens"] - NUM_PROMPTS
    )
    assert (
        m["vllm:iteration_tokens_total:sum"]
        == m["vllm:prompt_tokens"] + m["vllm:generation_tokens"]
    )

    # Worker: the same steps, in another process, with the step ids stamped in the EngineCore.
    wk_rows = [r for r in _rows(wk) if r["operation"] == "execute_model"]
    assert [int(r["step_id"]) for r in wk_rows] == list(range(1, n + 1))
    assert {int(r["step_id"]): int(r["num_tokens"]) for r in wk_rows} == tokens

    # Timestamps share the session clock: each worker step starts after its schedule span began.
    sched_t = {int(r["step_id"]): float(r["timestamp_sec"]) for r in sched}
    for r in _rows(wk):
        assert float(r["timestamp_sec"]) >= sched_t[int(r["step_id"])]

    meta = json.loads((run.session_dir / "metadata.json").read_text())
    assert meta["versions"]["vllm"] == "0.32.0"
    assert meta["created_by"]["activation"] == "run"
    # Default logging: one start-up line per process naming the session folder.
    lines = [ln for ln in run.log.splitlines() if "profiling into" in ln]
    assert len(lines) == 3 and all(str(run.session_dir) in ln for ln in lines), lines


def test_probes_that_raise_change_nothing_in_generation(vllm_run):
    plain = vllm_run(*DENSE)
    faulty = vllm_run(*DENSE, profile=True, profilemate_args=("--fault-inject",))
    assert [r["output_token_ids"] for r in faulty.requests] == [
        r["output_token_ids"] for r in plain.requests
    ]
    assert len(faulty.requests) == NUM_PROMPTS
    ec, wk = _one(faulty, "enginecore-"), _one(faulty, "worker-0-")
    for d, key in ((ec, SCHED_KEY), (wk, WORKER_KEY)):
        t = _status(d)[key]
        assert t["state"] == "applied"
        assert t["health"]["active"] is False and t["health"]["errors"] == 1
        assert "FaultInjected" in t["health"]["first_error"]
    # Each probe whose hooks ran says so once, in whichever process: every target stacked on
    # schedule and on the worker's execute_model, and the lifecycle probes that run as the
    # EngineCore and the worker shut down (their final files are then written at exit). Several
    # categories' targets may share a site (stacked), each with its own health and its own line.
    targets = [t for d in faulty.process_dirs() for t in _targets(d)]
    raised = Counter(t["target"] for t in targets if (t["health"] or {}).get("errors"))
    for key in (SCHED_KEY, WORKER_KEY, *LIFECYCLE_KEYS, *NEW_HOOKED_KEYS):
        assert raised[key] >= 1, key
    for t in targets:
        if (t["health"] or {}).get("errors"):
            assert t["health"]["errors"] == 1 and t["health"]["active"] is False, t
    assert faulty.log.count("switched off for this process") == sum(raised.values())
    for key, n in raised.items():
        assert faulty.log.count(f"probe {key} raised") == n, key
