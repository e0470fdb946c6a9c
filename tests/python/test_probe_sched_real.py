"""batch_utilization and preemptions on vLLM's REAL Scheduler, driven as vLLM's own scheduler tests
drive it: hand-made requests, a tiny KV cache (so the scheduler must preempt), synthetic model
outputs. Each row is checked against what the scheduler itself did, observed from outside the
probes: the request objects before/after every schedule(), vLLM's PrefixCacheStats, its queues.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from test_core_readers import read_csv
from test_registry import Core

pytest.importorskip("vllm")

from profilemate import _core  # noqa: E402
from profilemate.hooks.watchdog import ModuleWatchdog  # noqa: E402
from profilemate.probes import load_category  # noqa: E402
from profilemate.probes.registry import APPLIED, Registry, set_fault_injection  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

BLOCK = 16
BATCH = load_category("batch_utilization")
PREEMPT = load_category("preemptions")
CPU_OPS = load_category("cpu_ops")


def _targets():
    sched_only = [
        t
        for t in CPU_OPS.TARGETS
        if t.site.qualname == "Scheduler.schedule"  # stacked with ours, as in a real run
    ]
    return [*sched_only, *BATCH.TARGETS, *PREEMPT.TARGETS]


def make_scheduler(
    *,
    num_blocks: int,
    max_num_seqs: int = 8,
    budget: int = 256,
    prefix_caching: bool = True,
    chunked_prefill: bool = True,
    v2: bool = False,
    max_model_len: int = 512,
):
    """A real vLLM Scheduler over a tiny KV cache (vLLM's tests/v1/core/utils.py does the same)."""
    import torch
    from vllm.config import CacheConfig, DeviceConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.structured_output import StructuredOutputManager

    from profilemate.demo.models import ensure_model

    mc = ModelConfig(
        model=str(ensure_model("dense")), max_model_len=max_model_len, dtype="float32", seed=0
    )
    sc = SchedulerConfig(
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=budget,
        max_model_len=max_model_len,
        is_encoder_decoder=False,
        enable_chunked_prefill=chunked_prefill,
    )
    cc = CacheConfig(block_size=BLOCK, cache_dtype="auto", enable_prefix_caching=prefix_caching)
    cc.num_gpu_blocks = num_blocks
    vc = VllmConfig(
        model_config=mc, scheduler_config=sc, cache_config=cc, device_config=DeviceConfig("cpu")
    )
    spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=1, head_size=1, dtype=torch.float32)
    kvc = KVCacheConfig(
        num_blocks=num_blocks,
        kv_cache_tensors=[],
        kv_cache_groups=[KVCacheGroupSpec(["layer"], spec)],
    )
    s = Scheduler(
        vllm_config=vc,
        kv_cache_config=kvc,
        structured_output_manager=StructuredOutputManager(vc),
        block_size=BLOCK,
        log_stats=True,
    )
    # The V2 model runner's output format (resumed requests listed as new): a field of the
    # scheduler, set from the config in __init__ (scheduler.py:374).
    s.use_v2_model_runner = v2
    return s


def make_requests(n: int, *, base_len: int = 20, step_len: int = 7, max_tokens: int = 24, tag=""):
    from vllm.sampling_params import SamplingParams
    from vllm.utils.hashing import sha256
    from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
    from vllm.v1.request import Request

    init_none_hash(sha256)
    hasher = get_request_block_hasher(BLOCK, sha256)
    out = []
    for i in range(n):
        length = base_len + (i * step_len) % 40
        ids = [100 + (i * 37 + j * 11) % 900 for j in range(length)]  # distinct prompts
        params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
        out.append(Request(f"{tag}req-{i}", ids, params, None, block_hasher=hasher))
    return out


@dataclasses.dataclass
class Step:
    """What the scheduler did in one step, seen from outside the probes."""

    so: object
    running: int
    waiting: int
    deferred: int
    preempted: dict  # request id -> num_computed_tokens before the step (KV dropped)
    resumed: dict  # request id -> num_computed_tokens right after admission (cache hit)
    prefill: set
    decode: set
    preempted_hits: int  # vLLM's PrefixCacheStats.preempted_hits of this step's admissions
    free_blocks: int  # BlockPool.get_num_free_blocks() after schedule()
    head_tokens: int  # num_tokens of the first waiting request after schedule() (0: none)


def run_steps(s, requests, *, max_steps=2000, between=None) -> list[Step]:
    """Drive schedule() / update_from_output() to the end with a synthetic ModelRunnerOutput."""
    from vllm.v1.outputs import ModelRunnerOutput
    from vllm.v1.request import RequestStatus

    for r in requests:
        s.add_request(r)
    out: list[Step] = []
    for i in range(max_steps):
        if between is not None:
            between(i, s)
        if not (s.requests or s.has_finished_requests()):  # (has_requests() is False when paused)
            break
        before = {r.request_id: (r.status, r.num_computed_tokens) for r in requests}
        pcs = s.kv_cache_manager.prefix_cache_stats
        hits0 = pcs.preempted_hits
        known = {r.request_id: (r.num_tokens, r.num_output_tokens) for r in requests}
        so = s.schedule()
        preempted = {
            rid: before[rid][1]
            for rid in so.preempted_req_ids
            if before[rid][0] == RequestStatus.RUNNING
        }
        resumed, prefill, decode = {}, set(), set()
        for rid, n in so.num_scheduled_tokens.items():
            req = s.requests[rid]
            status0, computed0 = before[rid]
            if status0 == RequestStatus.PREEMPTED:
                resumed[rid] = req.num_computed_tokens - n
                prefill.add(rid)
                continue
            num_tokens, outputs = known[rid]
            # decode: it computes exactly its last sampled token (no drafts here)
            if outputs > 0 and computed0 == num_tokens - 1 and n == 1:
                decode.add(rid)
            else:
                prefill.add(rid)
        step = Step(
            so,
            len(s.running),
            len(s.waiting) + len(s.kv_holding_waiting),
            len(s.deferred_waiting),
            preempted,
            resumed,
            prefill,
            decode,
            pcs.preempted_hits - hits0,
            s.kv_cache_manager.block_pool.get_num_free_blocks(),
            s.waiting.peek_request().num_tokens if s.waiting else 0,
        )
        ids = list(so.num_scheduled_tokens)
        sampled = [[] if s.requests[rid].is_prefill_chunk else [7] for rid in ids]
        mro = ModelRunnerOutput(
            req_ids=ids,
            req_id_to_index={r: k for k, r in enumerate(ids)},
            sampled_token_ids=sampled,
        )
        s.update_from_output(so, mro)
        out.append(step)
    assert not s.requests and not s.has_requests(), "the workload did not finish"
    return out


@pytest.fixture
def profiled(tmp_path):
    """A core session and the three categories patched into the real vllm scheduler module."""
    import vllm.v1.core.sched.scheduler  # noqa: F401  (imported: patched at once)

    wd = ModuleWatchdog()
    wd.install()
    core = Core(tmp_path / "session")
    reg = Registry(_targets(), core.recorder, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    try:
        st = {(t["target"], t["category"]): t["state"] for t in reg.status()}
        for key, state in st.items():
            if key[0].startswith("vllm.v1.core.sched.scheduler:"):
                assert state == APPLIED, (key, state)
        yield core
    finally:
        reg.deactivate()
        _core.stop()
        wd.uninstall()


def table(core, name: str) -> list[dict]:
    _core.flush()
    path = os.path.join(core.dir, f"{name}.csv")
    if not os.path.exists(path):
        return []
    header, rows = read_csv(path)
    return [dict(zip(header, r, strict=True)) for r in rows]


def num(row: dict, col: str) -> float:
    return float(row[col])


@pytest.mark.parametrize("v2", [False, True], ids=["v1-runner", "v2-runner"])
def test_batch_and_preemption_rows_match_the_scheduler(profiled, v2):

    # 10 requests of 20-56 prompt tokens + 24 outputs need up to 5 blocks each; 24 blocks of 16
    # tokens hold 384 tokens: the scheduler must preempt.
    s = make_scheduler(num_blocks=20, max_num_seqs=6, budget=96, v2=v2)
    reqs = make_requests(10)
    steps = run_steps(s, reqs)
    assert sum(len(st.preempted) for st in steps) > 0, "no preemption: the test proves nothing"

    batch = table(profiled, "batch_utilization")
    ops = [r for r in table(profiled, "cpu_operations_timing") if r["operation"] == "schedule"]
    assert [int(r["step_id"]) for r in batch] == list(range(1, len(steps) + 1))
    assert [r["num_tokens"] for r in ops] == [r["scheduled_tokens"] for r in batch]
    for row, st in zip(batch, steps, strict=True):
        so = st.so
        where = f"step {row['step_id']}: {row}"
        assert num(row, "scheduled_tokens") == so.total_num_scheduled_tokens, where
        assert num(row, "scheduled_reqs") == len(so.num_scheduled_tokens), where
        assert num(row, "running_reqs") == st.running, where
        assert num(row, "max_num_seqs") == 6 and num(row, "token_budget") == 96, where
        assert num(row, "waiting_reqs") == st.waiting, where
        assert num(row, "waiting_deferred") == st.deferred, where
        assert num(row, "preempted_reqs") == len(st.preempted), where
        assert num(row, "prefill_reqs") == len(st.prefill), where
        assert num(row, "decode_reqs") == len(st.decode), where
        nst = so.num_scheduled_tokens
        assert num(row, "prefill_tokens") == sum(nst[r] for r in st.prefill), where
        assert num(row, "decode_tokens") == sum(nst[r] for r in st.decode), where
        kind = (
            "empty"
            if not nst
            else "mixed"
            if st.prefill and st.decode
            else "prefill"
            if st.prefill
            else "decode"
        )
        assert row["batch_kind"] == kind, where
        # why not fuller: the scheduler's own state at the end of the step
        if st.preempted:
            assert row["limit"] == "kv_cache", where
        elif so.total_num_scheduled_tokens == 96:
            assert row["limit"] == "token_budget", where
        elif st.waiting == 0:
            assert row["limit"] == "nothing_waiting", where
        elif st.running >= 6:
            assert row["limit"] == "seq_cap", where
        else:
            # a waiting request was left out with budget and seats free: its blocks cannot have
            # fit (the most it needs is all of its tokens; no watermark is set)
            assert row["limit"] == "kv_cache", where
            assert -(-st.head_tokens // BLOCK) > st.free_blocks, where
    limits = {r["limit"] for r in batch}
    assert {"kv_cache", "token_budget", "nothing_waiting"} <= limits, limits

    events = table(profiled, "preemption_events")
    pre = [r for r in events if r["event"] == "preempted"]
    res = [r for r in events if r["event"] == "resumed"]
    # one preempted row per preemption vLLM counted on the requests, each with its KV dropped
    assert len(pre) == sum(r.num_preemptions for r in reqs) > 0
    by_step = {}
    for i, st in enumerate(steps, start=1):
        for rid, dropped in st.preempted.items():
            by_step.setdefault(i, {})[rid] = dropped
    got = {}
    for r in pre:
        assert r["reason"] == "kv_cache_exhausted"
        got.setdefault(int(r["step_id"]), {})[r["request_id"]] = num(r, "kv_tokens_dropped")
    assert got == by_step
    # every preempted request resumed, once per preemption, and finished
    assert sorted(r["request_id"] for r in pre) == sorted(r["request_id"] for r in res)
    assert all(r.is_finished() for r in reqs)
    # resumes: the hits are vLLM's own PrefixCacheStats.preempted_hits of the same step
    res_hits = {}
    for r in res:
        res_hits[int(r["step_id"])] = res_hits.get(int(r["step_id"]), 0) + num(
            r, "prefix_hit_tokens"
        )
    for i, st in enumerate(steps, start=1):
        assert res_hits.get(i, 0) == st.preempted_hits == sum(st.resumed.values()), i
        for rid, hit in st.resumed.items():
            row = next(r for r in res if int(r["step_id"]) == i and r["request_id"] == rid)
            assert num(row, "prefix_hit_tokens") == hit
            assert num(row, "recomputed_tokens") == num(row, "kv_tokens_dropped") - hit
            assert num(row, "preempted_sec") > 0 and int(num(row, "preempted_step")) < i
    # freed blocks stayed cached: some resumes got tokens back (the whole point of the column)
    assert sum(num(r, "prefix_hit_tokens") for r in res) > 0
    # Σ scheduled tokens = prompt + generated - requests + recomputed (distinct prompts: no other hit)
    recomputed = sum(num(r, "recomputed_tokens") for r in res)
    total = sum(num(r, "scheduled_tokens") for r in batch)
    expect = sum(r.num_prompt_tokens + r.num_output_tokens - 1 for r in reqs) + recomputed
    assert total == expect
    # the per-step table agrees with the events
    per_step = table(profiled, "preemption_steps")
    assert [int(r["step_id"]) for r in per_step] == list(range(1, len(steps) + 1))
    assert sum(num(r, "preempted_reqs") for r in per_step) == len(pre)
    assert sum(num(r, "resumed_reqs") for r in per_step) == len(res)
    assert sum(num(r, "recomputed_tokens") for r in per_step) == recomputed
    assert num(per_step[-1], "preempted_waiting") == 0
    # nothing kept once the requests are done
    from profilemate.probes.categories.preemptions import _STATES

    assert not _STATES[s].pending


def test_seq_cap_token_budget_and_pause(profiled):
    from vllm.v1.core.sched.interface import PauseState

    # 2 seats, plenty of KV, a budget larger than two prompts: the seats are the limit
    s = make_scheduler(num_blocks=200, max_num_seqs=2, budget=512)
    paused_steps = []

    def between(i, sched):
        if i == 3:
            sched.set_pause_state(PauseState.PAUSED_ALL)
            paused_steps.append(sched.current_step + 1)
        elif i == 4:
            sched.set_pause_state(PauseState.UNPAUSED)

    run_steps(s, make_requests(5, max_tokens=6), between=between)
    batch = table(profiled, "batch_utilization")
    first = batch[0]
    assert first["limit"] == "seq_cap" and num(first, "running_reqs") == 2
    assert num(first, "waiting_reqs") == 3 and first["batch_kind"] == "prefill"
    paused = next(r for r in batch if int(r["step_id"]) == paused_steps[0])
    assert paused["limit"] == "paused" and num(paused, "scheduled_tokens") == 0
    assert batch[-1]["limit"] == "nothing_waiting"

    # chunked prefill off, a budget below the next prompt: vLLM stops at the token budget
    s2 = make_scheduler(
        num_blocks=200, max_num_seqs=8, budget=64, chunked_prefill=False, max_model_len=64
    )
    n0 = len(table(profiled, "batch_utilization"))
    run_steps(s2, make_requests(3, base_len=40, step_len=0, max_tokens=4, tag="c"))
    rows = table(profiled, "batch_utilization")[n0:]
    assert rows[0]["limit"] == "token_budget" and num(rows[0], "scheduled_tokens") == 40
    assert num(rows[0], "waiting_reqs") == 2


def test_prefix_cache_reset_preemptions_are_labelled(profiled):
    s = make_scheduler(num_blocks=200, max_num_seqs=8, budget=512)
    running_at_reset = []

    def between(i, sched):
        if i == 3:
            running_at_reset.append({r.request_id: r.num_computed_tokens for r in sched.running})
            assert sched.reset_prefix_cache(reset_running_requests=True)

    reqs = make_requests(4, max_tokens=8)
    run_steps(s, reqs, between=between)
    events = table(profiled, "preemption_events")
    resets = [r for r in events if r["event"] == "prefix_cache_reset"]
    pre = [r for r in events if r["event"] == "preempted"]
    res = [r for r in events if r["event"] == "resumed"]
    assert len(resets) == 1
    assert len(pre) == len(running_at_reset[0]) == 4
    assert {r["reason"] for r in pre} == {"prefix_cache_reset"}
    assert {r["reason"] for r in res} == {"prefix_cache_reset"}
    assert sorted(num(r, "kv_tokens_dropped") for r in pre) == sorted(running_at_reset[0].values())
    # the cache was reset: nothing given back, everything dropped is computed again
    assert all(num(r, "prefix_hit_tokens") == 0 for r in res)
    assert all(num(r, "recomputed_tokens") == num(r, "kv_tokens_dropped") for r in res)
    batch = table(profiled, "batch_utilization")
    # the resumes happen in the next step; a reset between steps is not a KV-cache preemption
    nxt = next(r for r in batch if int(r["step_id"]) == int(res[0]["step_id"]))
    assert num(nxt, "preempted_reqs") == 0 and num(nxt, "admitted_reqs") == 4


def test_state_of_a_preempted_request_that_is_aborted_is_dropped(profiled):
    from vllm.v1.request import RequestStatus

    from profilemate.probes.categories.preemptions import _STATES

    s = make_scheduler(num_blocks=24, max_num_seqs=6, budget=96)
    aborted = []

    def between(i, sched):
        st = _STATES.get(sched)
        if not aborted and st is not None and st.pending:
            rid = next(iter(st.pending))
            sched.finish_requests(rid, RequestStatus.FINISHED_ABORTED)
            aborted.append(rid)

    run_steps(s, make_requests(10), between=between)
    assert aborted
    assert not _STATES[s].pending


def test_hooks_that_raise_change_nothing_in_the_schedule(tmp_path):
    """Every hook of the three categories raising: the scheduler schedules exactly the same."""
    import vllm.v1.core.sched.scheduler  # noqa: F401

    def trace(**kw):
        s = make_scheduler(num_blocks=24, max_num_seqs=6, budget=96)
        steps = run_steps(s, make_requests(10), **kw)
        return [dict(st.so.num_scheduled_tokens) for st in steps]

    plain = trace()
    wd = ModuleWatchdog()
    wd.install()
    core = Core(tmp_path / "faulty")
    set_fault_injection(True)
    reg = Registry(_targets(), core.recorder, watchdog=wd, vllm_version="0.32.0")
    reg.activate()
    try:

        def reset_once(i, sched):
            if i == 5:
                sched.reset_prefix_cache(reset_running_requests=True)

        faulty = trace()
        faulty_reset = trace(between=reset_once)
        status = {t["target"]: t for t in reg.status()}
    finally:
        reg.deactivate()
        set_fault_injection(False)
        _core.stop()
        wd.uninstall()
    assert faulty == plain
    assert len(faulty_reset) > 0
    for key in (
        "vllm.v1.core.sched.scheduler:Scheduler._preempt_request",
        "vllm.v1.core.sched.scheduler:Scheduler.reset_prefix_cache",
    ):
        h = status[key]["health"]
        assert h["active"] is False and h["errors"] >= 1, (key, h)
