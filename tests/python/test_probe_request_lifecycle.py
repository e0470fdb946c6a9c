"""request_lifecycle and the new cpu_ops targets on vLLM's REAL classes (no model): the EngineCore's
``Scheduler`` and the API's ``OutputProcessor``, driven as vLLM's own scheduler tests and
``LLMEngine.step`` drive them (schedule -> model runner output -> update_from_output ->
process_outputs), through the real registry and a real core session.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from test_core_readers import read_csv

pytest.importorskip("vllm")

import torch  # noqa: E402
from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig  # noqa: E402
from vllm.sampling_params import RequestOutputKind, SamplingParams  # noqa: E402
from vllm.v1.core.sched.scheduler import Scheduler  # noqa: E402
from vllm.v1.engine import EngineCoreRequest  # noqa: E402
from vllm.v1.engine.output_processor import OutputProcessor  # noqa: E402
from vllm.v1.kv_cache_interface import (  # noqa: E402
    FullAttentionSpec,
    KVCacheConfig,
    KVCacheGroupSpec,
)
from vllm.v1.outputs import ModelRunnerOutput  # noqa: E402
from vllm.v1.request import Request, RequestStatus  # noqa: E402
from vllm.v1.structured_output import StructuredOutputManager  # noqa: E402

from profilemate import _core  # noqa: E402
from profilemate.hooks.watchdog import ModuleWatchdog  # noqa: E402
from profilemate.probes import load_category  # noqa: E402
from profilemate.probes.recorder import CoreRecorder  # noqa: E402
from profilemate.probes.registry import APPLIED, Registry  # noqa: E402

RL = load_category("request_lifecycle")
CPU = load_category("cpu_ops")
BLOCK = 16


@pytest.fixture(scope="module")
def vllm_config():
    from profilemate.demo.models import ensure_model

    model = str(ensure_model("dense"))
    sc = SchedulerConfig(
        max_num_seqs=16,
        max_num_batched_tokens=512,
        max_model_len=512,
        is_encoder_decoder=False,
        enable_chunked_prefill=True,
    )
    mc = ModelConfig(model=model, dtype="float32", seed=0, skip_tokenizer_init=True)
    cc = CacheConfig(block_size=BLOCK, cache_dtype="auto", enable_prefix_caching=False)
    return VllmConfig(scheduler_config=sc, model_config=mc, cache_config=cc)


def make_scheduler(vc, num_blocks: int) -> Scheduler:
    kv = KVCacheConfig(
        num_blocks=num_blocks,
        kv_cache_tensors=[],
        kv_cache_groups=[
            KVCacheGroupSpec(
                ["layer"],
                FullAttentionSpec(
                    block_size=BLOCK, num_kv_heads=1, head_size=1, dtype=torch.float32
                ),
            )
        ],
    )
    vc.cache_config.num_gpu_blocks = num_blocks
    return Scheduler(
        vllm_config=vc,
        kv_cache_config=kv,
        log_stats=False,
        structured_output_manager=StructuredOutputManager(vc),
        block_size=BLOCK,
    )


@pytest.fixture
def session(tmp_path):
    RL.ENGINE.clear()
    RL.API_STATE.clear()
    wd = ModuleWatchdog()
    wd.install()
    d = _core.start(str(tmp_path / "s"), "registry", flush_interval_ms=20)
    targets = [*RL.TARGETS] + [
        t
        for t in CPU.TARGETS
        if t.operation in ("schedule", "update_from_output", "process_outputs")
    ]
    reg = Registry(targets, CoreRecorder(_core), watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    try:
        yield d, reg
    finally:
        reg.deactivate()
        _core.stop()
        wd.uninstall()
        RL.ENGINE.clear()
        RL.API_STATE.clear()


def rows(d: str, table: str) -> list[dict]:
    _core.flush()
    path = os.path.join(d, f"{table}.csv")
    if not os.path.exists(path):
        return []
    header, body = read_csv(path)
    return [dict(zip(header, r, strict=True)) for r in body]


class Engine:
    """The API's OutputProcessor and the EngineCore's Scheduler, wired as LLMEngine wires them."""

    def __init__(self, vc, num_blocks: int) -> None:
        self.sched = make_scheduler(vc, num_blocks)
        self.op = OutputProcessor(None, log_stats=False)
        self.token = 11

    def add(self, rid: str, prompt_len: int, max_tokens: int) -> None:
        sp = SamplingParams(
            max_tokens=max_tokens,
            detokenize=False,
            ignore_eos=True,
            output_kind=RequestOutputKind.DELTA,
        )
        ecr = EngineCoreRequest(
            request_id=rid,
            prompt_token_ids=[5 + i % 50 for i in range(prompt_len)],
            mm_features=None,
            sampling_params=sp,
            pooling_params=None,
            arrival_time=time.time(),
            lora_request=None,
            cache_salt=None,
            data_parallel_rank=None,
            external_req_id=rid,
        )
        self.op.add_request(ecr, None)
        self.sched.add_request(Request.from_engine_core_request(ecr, block_hasher=None))

    def step(self) -> int:
        so = self.sched.schedule()
        ids = list(so.num_scheduled_tokens)
        # A request still in chunked prefill samples nothing; one that reached its end samples.
        sampled = []
        for rid in ids:
            req = self.sched.requests[rid]
            done = req.num_computed_tokens >= req.num_tokens
            sampled.append([self.token] if done else [])
        mro = ModelRunnerOutput(
            req_ids=ids,
            req_id_to_index={r: i for i, r in enumerate(ids)},
            sampled_token_ids=sampled,
            logprobs=None,
            prompt_logprobs_dict={},
            pooler_output=[],
        )
        out = self.sched.update_from_output(so, mro)
        for eco in out.values():
            self.op.process_outputs(eco.outputs, engine_core_timestamp=eco.timestamp)
        return so.total_num_scheduled_tokens

    def run(self, max_steps: int = 200) -> None:
        for _ in range(max_steps):
            if not self.sched.has_requests():
                return
            self.step()
        raise AssertionError("requests did not finish")


def _f(x: str) -> float:
    return float(x)


def test_one_row_per_request_in_each_process_with_ordered_times(vllm_config, session):
    d, reg = session
    st = {r["target"]: r for r in reg.status()}
    for t in RL.TARGETS:
        assert st[t.key]["state"] == APPLIED, st[t.key]
    eng = Engine(vllm_config, num_blocks=64)
    lens = {"a": 20, "b": 40, "c": 7}  # c: fits one block; b: several blocks
    toks = {"a": 3, "b": 1, "c": 5}
    reqs = {}
    for rid in lens:
        eng.add(rid, lens[rid], toks[rid])
        reqs[rid] = eng.sched.requests[rid]
    eng.run()

    ec = [r for r in rows(d, "request_lifecycle") if r["step_id"] != ""]
    api = [r for r in rows(d, "request_lifecycle") if r["step_id"] == ""]
    assert sorted(r["request_id"] for r in ec) == sorted(lens)
    assert sorted(r["request_id"] for r in api) == sorted(lens)
    for r in ec + api:
        rid = r["request_id"]
        assert r["finish_reason"] == "length"
        assert int(r["prompt_tokens"]) == lens[rid]
        assert int(r["output_tokens"]) == toks[rid] == reqs[rid].num_output_tokens
        arrival, queued, first_tok, fin = (
            _f(r[k]) for k in ("arrival_s", "queued_s", "first_token_s", "finish_s")
        )
        # One clock: vLLM's wall-clock arrival converted to CLOCK_MONOTONIC (the core's clock).
        assert arrival <= queued <= first_tok <= fin
    for r in ec:
        sched = _f(r["first_scheduled_s"])
        assert _f(r["queued_s"]) <= sched <= _f(r["first_token_s"])
        assert int(r["num_preemptions"]) == 0
        assert int(float(r["first_scheduled_step"])) <= int(float(r["first_token_step"]))
        assert int(float(r["first_token_step"])) <= int(r["step_id"])
        assert r["first_token_engine_timestamp"] == ""
    for r in api:
        assert r["first_scheduled_s"] == "" and r["num_preemptions"] == ""

    # The per-step flow: each request entered each stage once; nothing stays tracked.
    flow = rows(d, "request_flow")
    by_op: dict[str, list[dict]] = {}
    for r in flow:
        by_op.setdefault(r["operation"], []).append(r)
    assert sum(int(r["entered"]) for r in by_op["add_request"]) == 2 * len(lens)  # EC + API
    assert sum(int(r["entered"]) for r in by_op["schedule"]) == len(lens)
    assert sum(int(r["entered"]) for r in by_op["update_from_output"]) == len(lens)
    assert sum(int(r["entered"]) for r in by_op["process_outputs"]) == len(lens)
    assert sum(int(r["finished"]) for r in by_op["update_from_output"]) == len(lens)
    assert sum(int(r["finished"]) for r in by_op["process_outputs"]) == len(lens)
    assert not RL.ENGINE.states and not RL.ENGINE.awaiting and not RL.API_STATE.states


def test_api_rows_join_engine_steps_through_the_engine_timestamp(vllm_config, session):
    d, _ = session
    eng = Engine(vllm_config, num_blocks=64)
    for i in range(4):
        eng.add(f"r{i}", 10 + 17 * i, 2 + i)
    eng.run()
    ops = rows(d, "cpu_operations_timing")
    sched = [r for r in ops if r["operation"] == "schedule"]
    upd = [r for r in ops if r["operation"] == "update_from_output"]
    proc = [r for r in ops if r["operation"] == "process_outputs"]
    # update_from_output: one row per schedule, with its step (from the SchedulerOutput).
    assert [r["step_id"] for r in upd] == [r["step_id"] for r in sched]
    assert [r["num_tokens"] for r in upd] == [r["num_tokens"] for r in sched]
    step_of_ts = {
        r["engine_timestamp"]: int(r["step_id"]) for r in upd if r["engine_timestamp"] != "0"
    }
    # process_outputs (API): every row's engine_timestamp is, as text, one update_from_output's.
    assert proc and all(r["engine_timestamp"] in step_of_ts for r in proc)
    # The API lifecycle rows join to the step the EngineCore says gave the first token.
    lc = rows(d, "request_lifecycle")
    ec = {r["request_id"]: r for r in lc if r["step_id"] != ""}
    api = {r["request_id"]: r for r in lc if r["step_id"] == ""}
    assert set(ec) == set(api) == {f"r{i}" for i in range(4)}
    for rid, r in api.items():
        assert step_of_ts[r["first_token_engine_timestamp"]] == int(
            float(ec[rid]["first_token_step"])
        )
        assert step_of_ts[r["finish_engine_timestamp"]] == int(ec[rid]["step_id"])


def test_preemptions_and_aborts(vllm_config, session):
    d, _ = session
    # 8 usable blocks of 16 tokens for 3 requests that need ~5 blocks each: vLLM must preempt.
    eng = Engine(vllm_config, num_blocks=9)
    for i in range(3):
        eng.add(f"p{i}", 40, 40)
    eng.add("gone", 8, 50)
    reqs = dict(eng.sched.requests)
    for _ in range(3):
        eng.step()
    # An abort from the API, as AsyncLLM.abort does: the OutputProcessor, then the EngineCore.
    aborted = eng.op.abort_requests(["gone"], internal=True)
    eng.sched.finish_requests(aborted, RequestStatus.FINISHED_ABORTED)
    eng.run(max_steps=1000)
    preempted = {rid: r.num_preemptions for rid, r in reqs.items()}
    assert sum(preempted.values()) > 0, "the KV cache was not small enough to preempt"
    lc = rows(d, "request_lifecycle")
    ec = {r["request_id"]: r for r in lc if r["step_id"] != ""}
    api = {r["request_id"]: r for r in lc if r["step_id"] == ""}
    assert set(ec) == set(api) == set(reqs)
    assert {rid: int(r["num_preemptions"]) for rid, r in ec.items()} == preempted
    assert ec["gone"]["finish_reason"] == api["gone"]["finish_reason"] == "abort"
    assert api["gone"]["finish_engine_timestamp"] == ""
    for rid in ("p0", "p1", "p2"):
        assert ec[rid]["finish_reason"] == "length" and int(ec[rid]["output_tokens"]) == 40
    assert not RL.ENGINE.states and not RL.API_STATE.states


def test_state_is_bounded(vllm_config, session, monkeypatch):
    d, _ = session
    monkeypatch.setattr(RL, "MAX_TRACKED", 2)
    eng = Engine(vllm_config, num_blocks=64)
    for i in range(4):
        eng.add(f"b{i}", 9, 2)
    assert len(RL.ENGINE.states) == 2 and len(RL.API_STATE.states) == 2
    eng.run()
    lc = [r for r in rows(d, "request_lifecycle") if r["step_id"] != ""]
    # Every request still gets its EngineCore row (from _free_request); untracked ones lack times.
    assert len(lc) == 4
    assert sum(r["queued_s"] == "" for r in lc) == 2
    assert not RL.ENGINE.states and not RL.API_STATE.states


def test_async_renderer_rows_span_the_whole_await(vllm_config, tmp_path):
    """The server's coroutine render path on vLLM's real renderer: one row per call, and the span
    covers the await (not just the coroutine's creation)."""
    from vllm.renderers import renderer_from_config

    mc = ModelConfig(model=vllm_config.model_config.model, dtype="float32", seed=0)
    vc = VllmConfig(model_config=mc)
    wd = ModuleWatchdog()
    wd.install()
    d = _core.start(str(tmp_path / "s"), "registry", flush_interval_ms=20)
    targets = [t for t in CPU.TARGETS if t.operation in ("render", "tokenize")]
    reg = Registry(targets, CoreRecorder(_core), watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    try:
        st = {r["target"]: r for r in reg.status()}
        for q in ("render_cmpl_async", "tokenize_prompts_async", "render_cmpl", "tokenize_prompts"):
            assert st[f"vllm.renderers.base:BaseRenderer.{q}"]["state"] == APPLIED
        renderer = renderer_from_config(vc)
        prompts = [{"prompt": "the quick brown fox"}, {"prompt": "jumps over the lazy dog again"}]

        async def go():
            t0 = _core.now_ns()
            out = await renderer.render_cmpl_async(prompts)
            return t0, _core.now_ns(), out

        t0, t1, out = asyncio.run(go())
        assert len(out) == 2 and all(len(e["prompt_token_ids"]) > 0 for e in out)
        sync_out = renderer.render_cmpl(prompts)
        assert [e["prompt_token_ids"] for e in sync_out] == [e["prompt_token_ids"] for e in out]
        renderer.shutdown()
    finally:
        reg.deactivate()
    r = rows(d, "cpu_operations_timing")
    _core.stop()
    wd.uninstall()
    ctx = [(x["operation"], x["context"]) for x in r]
    assert ctx.count(("render", "BaseRenderer.render_cmpl_async")) == 1
    assert ctx.count(("tokenize", "BaseRenderer.tokenize_prompts_async")) == 1
    assert ctx.count(("render", "BaseRenderer.render_cmpl")) == 1
    assert ctx.count(("tokenize", "BaseRenderer.tokenize_prompts")) == 1
    # The async render span contains the tokenize span awaited inside it (a wrapper that timed the
    # coroutine's creation would end before it began), and is no longer than the caller's await.
    for x in r:
        if x["context"] == "BaseRenderer.render_cmpl_async":
            a_start, a_dur = float(x["timestamp_sec"]), float(x["duration_ms"]) / 1e3
        if x["context"] == "BaseRenderer.tokenize_prompts_async":
            t_start, t_dur = float(x["timestamp_sec"]), float(x["duration_ms"]) / 1e3
        if x["context"] == "BaseRenderer.render_cmpl":
            assert int(x["num_requests"]) == 2
    assert a_start <= t_start and t_start + t_dur <= a_start + a_dur + 1e-6
    assert 0 < t_dur <= a_dur <= (t1 - t0) / 1e9 + 1e-6
