"""The kv_cache probes on vLLM's REAL Scheduler / KVCacheManager / BlockPool (no model: the test plays
the model runner with synthetic outputs, as vLLM's own scheduler tests do), through the real C++
wrapper and a real core session.

Oracles, all vLLM's own: the pool's state read by the test right after ``schedule()`` returns; the
``SchedulerStats`` vLLM's ``update_from_output`` builds with ``make_stats()`` on the test's own
scheduler (``kv_cache_usage``, ``prefix_cache_stats``); and the ``BlockRemoved`` KV events vLLM emits
for every evicted cached block (collected from the test's own scheduler's publisher).
"""

from __future__ import annotations

import os
import random

import pytest
from test_core_readers import read_csv
from test_registry import Core

from profilemate import _core
from profilemate.hooks.watchdog import ModuleWatchdog
from profilemate.probes import load_category
from profilemate.probes.registry import APPLIED, Registry

torch = pytest.importorskip("torch")
vllm = pytest.importorskip("vllm")

from vllm.config import CacheConfig, KVEventsConfig, ModelConfig, SchedulerConfig, VllmConfig  # noqa: E402
from vllm.distributed.kv_events import BlockRemoved  # noqa: E402
from vllm.sampling_params import SamplingParams  # noqa: E402
from vllm.utils.hashing import sha256  # noqa: E402
from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash  # noqa: E402
from vllm.v1.core.sched.scheduler import Scheduler  # noqa: E402
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec  # noqa: E402
from vllm.v1.outputs import ModelRunnerOutput  # noqa: E402
from vllm.v1.request import Request  # noqa: E402
from vllm.v1.structured_output import StructuredOutputManager  # noqa: E402

KV = load_category("kv_cache")
BS = 16  # block size of the test pools


@pytest.fixture(scope="module")
def model_dir():
    from profilemate.demo.models import ensure_model

    return str(ensure_model("dense"))  # only its config.json is read: no weights are loaded


class _Events:
    """Stands in for the test scheduler's KV event publisher: keeps vLLM's event batches."""

    def __init__(self) -> None:
        self.batches = []

    def publish(self, batch) -> None:
        self.batches.append(batch)

    def shutdown(self) -> None:
        pass

    def removed(self) -> int:
        n = sum(
            len(e.block_hashes)
            for b in self.batches
            for e in b.events
            if isinstance(e, BlockRemoved)
        )
        self.batches.clear()
        return n


def make_scheduler(model_dir, num_blocks, *, caching=True, log_stats=True, max_num_seqs=4):
    sc = SchedulerConfig(
        max_num_seqs=max_num_seqs, max_num_batched_tokens=256, max_model_len=256,
        enable_chunked_prefill=True, is_encoder_decoder=False,
    )  # fmt: skip
    mc = ModelConfig(model=model_dir, dtype="float32", seed=0, skip_tokenizer_init=True)
    cc = CacheConfig(block_size=BS, enable_prefix_caching=caching)
    events = KVEventsConfig(enable_kv_cache_events=True, publisher="null")
    vc = VllmConfig(scheduler_config=sc, model_config=mc, cache_config=cc, kv_events_config=events)
    spec = FullAttentionSpec(block_size=BS, num_kv_heads=1, head_size=1, dtype=torch.float32)
    kvc = KVCacheConfig(
        num_blocks=num_blocks, kv_cache_tensors=[],
        kv_cache_groups=[KVCacheGroupSpec(["layer"], spec)],
    )  # fmt: skip
    cc.num_gpu_blocks = num_blocks
    s = Scheduler(
        vllm_config=vc, kv_cache_config=kvc, structured_output_manager=StructuredOutputManager(vc),
        block_size=BS, log_stats=log_stats,
    )  # fmt: skip
    s.kv_event_publisher = _Events()
    return s


def make_requests(n, *, seed=0, shared_prefix=0, max_tokens=24):
    """Prompts of 20-60 tokens; the first `shared_prefix` tokens are common to every other one."""
    init_none_hash(sha256)
    hasher = get_request_block_hasher(BS, sha256)
    rng = random.Random(seed)
    prefix = [rng.randrange(10, 1000) for _ in range(shared_prefix)]
    reqs = []
    for i in range(n):
        own = [rng.randrange(10, 1000) for _ in range(rng.randint(20, 60))]
        tokens = (prefix if i % 2 == 0 else []) + own
        params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
        reqs.append(Request(f"r{i}", tokens, params, None, block_hasher=hasher))
    return reqs


def model_output(s, out) -> ModelRunnerOutput:
    """One sampled token for each request whose prompt is fully computed (the test's model)."""
    ids = list(out.num_scheduled_tokens)
    sampled = []
    for rid in ids:
        r = s.requests[rid]
        sampled.append([7] if r.num_computed_tokens >= r.num_tokens else [])
    return ModelRunnerOutput(
        req_ids=ids, req_id_to_index={r: i for i, r in enumerate(ids)}, sampled_token_ids=sampled
    )


def free_cached(pool) -> list[int]:
    return [
        b.block_id for b in pool.free_block_queue.get_all_free_blocks() if b.block_hash is not None
    ]


def run(s, reqs, arrive_every=2):
    """Drive the scheduler to the end; return, per step, what vLLM itself says."""
    pool = s.kv_cache_manager.block_pool
    pending = list(reqs)
    truth = []
    while pending or s.has_requests():
        for _ in range(arrive_every):
            if pending:
                s.add_request(pending.pop(0))
        cached_before = set(free_cached(pool))
        out = s.schedule()
        after_schedule = dict(
            step=s.current_step,
            tokens=out.total_num_scheduled_tokens,
            free=pool.get_num_free_blocks(),
            cached_free=len(free_cached(pool)),
            usage=pool.get_usage(),
            cached_before=cached_before,
        )
        result = s.update_from_output(out, model_output(s, out))
        stats = next((e.scheduler_stats for e in result.values() if e.scheduler_stats), None)
        after_schedule.update(
            end_free=pool.get_num_free_blocks(),
            end_cached_free=len(free_cached(pool)),
            stats=stats,
            removed=s.kv_event_publisher.removed(),
        )
        truth.append(after_schedule)
    return truth


@pytest.fixture
def probes(tmp_path):
    core = Core(tmp_path / "session")
    wd = ModuleWatchdog()
    wd.install()
    reg = Registry(KV.TARGETS, core.recorder, watchdog=wd, vllm_version=vllm.__version__)
    reg.activate()
    try:
        yield core, reg
    finally:
        reg.deactivate()
        wd.uninstall()
        _core.stop()


def table(core, name) -> list[dict]:
    _core.flush()
    path = os.path.join(core.dir, f"{name}.csv")
    if not os.path.exists(path):
        return []
    header, rows = read_csv(path)
    return [dict(zip(header, r, strict=True)) for r in rows]


def num(row, col) -> float:
    return float(row[col])


def test_every_target_applies_on_vllm_0_32(probes):
    _, reg = probes
    states = {s["target"]: s["state"] for s in reg.status()}
    for t in KV.TARGETS:
        assert states[t.key] == APPLIED, (t.key, states)


def test_usage_rows_equal_the_pool_and_vllms_own_stats(model_dir, probes):
    core, _ = probes
    s = make_scheduler(model_dir, num_blocks=14)
    truth = run(s, make_requests(10, shared_prefix=40))
    rows = table(core, "kv_cache_usage")
    sched = [r for r in rows if r["point"] == "schedule"]
    update = [r for r in rows if r["point"] == "update"]
    # One row of each kind per engine step, numbered as vLLM numbers its steps.
    assert [int(r["step_id"]) for r in sched] == [t["step"] for t in truth]
    assert [int(r["step_id"]) for r in update] == [t["step"] for t in truth]
    total = s.kv_cache_manager.block_pool.num_gpu_blocks
    peak = 0.0
    for r, u, t in zip(sched, update, truth, strict=True):
        assert num(r, "scheduled_tokens") == t["tokens"]
        assert num(r, "total_blocks") == total == 14
        assert num(r, "free_blocks") == t["free"]
        assert num(r, "used_blocks") == total - 1 - t["free"]
        assert num(r, "cached_free_blocks") == t["cached_free"]
        assert num(r, "usage_pct") == 100.0 * t["usage"]
        peak = max(peak, num(r, "usage_pct"))
        # vLLM's own numbers for the step, from make_stats() inside update_from_output.
        st = t["stats"]
        assert num(u, "usage_pct") == 100.0 * st.kv_cache_usage
        assert num(u, "free_blocks") == t["end_free"]
        assert num(u, "cached_free_blocks") == t["end_cached_free"]
        p = st.prefix_cache_stats
        assert (num(r, "prefix_queries"), num(r, "prefix_hits"), num(r, "prefix_requests")) == (
            p.queries, p.hits, p.requests,
        )  # fmt: skip
        assert (
            num(r, "preempted_prefix_queries"),
            num(r, "preempted_prefix_hits"),
            num(r, "preempted_prefix_requests"),
        ) == (p.preempted_queries, p.preempted_hits, p.preempted_requests)
        assert num(u, "prefix_queries") == num(u, "prefix_hits") == 0
    # The workload is one that exercises everything: hits, preemptions, a full pool.
    assert sum(num(r, "prefix_hits") for r in sched) > 0
    assert sum(num(r, "preempted_prefix_requests") for r in sched) > 0
    assert peak >= 90.0


def test_evictions_are_vllms_block_removed_events(model_dir, probes):
    core, _ = probes
    s = make_scheduler(model_dir, num_blocks=14)
    truth = run(s, make_requests(12, shared_prefix=40, seed=1))
    ev = table(core, "kv_cache_evictions")
    usage = [r for r in table(core, "kv_cache_usage") if r["point"] == "schedule"]
    by_step: dict[int, list[dict]] = {}
    for r in ev:
        by_step.setdefault(int(r["step_id"]), []).append(r)
    assert sum(t["removed"] for t in truth) > 0, "the workload must evict"
    for t, u in zip(truth, usage, strict=True):
        mine = by_step.get(t["step"], [])
        assert len(mine) == t["removed"]  # one row per BlockRemoved hash vLLM emitted
        assert num(u, "evicted_blocks") == t["removed"]
        for r in mine:  # an evicted block was free and cached when the step began
            assert int(float(r["block_id"])) in t["cached_before"]
            assert 0 <= num(r, "idle_s") <= num(r, "lifetime_s")
            assert num(r, "prefix_hits") >= 0
    assert len(ev) == sum(t["removed"] for t in truth)


def test_lookup_rows_are_the_admissions_vllm_counts(model_dir, probes):
    core, _ = probes
    s = make_scheduler(model_dir, num_blocks=14)
    truth = run(s, make_requests(10, shared_prefix=40))
    lookups = table(core, "kv_prefix_cache_lookups")
    fresh = [r for r in lookups if r["preempted"] == "0"]
    assert sum(num(r, "hit_tokens") for r in fresh) == sum(
        t["stats"].prefix_cache_stats.hits for t in truth
    )
    assert len(fresh) == sum(t["stats"].prefix_cache_stats.requests for t in truth)
    assert all(r["counted"] == "1" for r in lookups)


def _numbers(rows, drop=("timestamp_sec", "duration_ms", "duration_us")):
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def test_same_numbers_with_vllms_statistics_off(model_dir, tmp_path):
    """log_stats off: vLLM keeps no PrefixCacheStats and make_stats() returns None; the probe's rows
    are the same as with statistics on (the workload is deterministic)."""
    results = []
    for i, log_stats in enumerate((True, False)):
        core = Core(tmp_path / f"s{i}")
        wd = ModuleWatchdog()
        wd.install()
        reg = Registry(KV.TARGETS, core.recorder, watchdog=wd, vllm_version=vllm.__version__)
        reg.activate()
        try:
            s = make_scheduler(model_dir, num_blocks=14, log_stats=log_stats)
            truth = run(s, make_requests(12, shared_prefix=40, seed=1))
            if not log_stats:
                assert all(t["stats"] is None for t in truth)
            results.append(
                {n: _numbers(table(core, n)) for n in ("kv_cache_usage", "kv_prefix_cache_lookups")}
                | {"evictions": len(table(core, "kv_cache_evictions"))}
            )
        finally:
            reg.deactivate()
            wd.uninstall()
            _core.stop()
    on, off = results
    assert on == off
    assert on["evictions"] > 0
    assert sum(float(r["prefix_hits"]) for r in off["kv_cache_usage"]) > 0


def test_prefix_caching_off_counts_no_lookups_and_no_evictions(model_dir, probes):
    core, _ = probes
    s = make_scheduler(model_dir, num_blocks=14, caching=False)
    truth = run(s, make_requests(8, shared_prefix=40))
    rows = [r for r in table(core, "kv_cache_usage") if r["point"] == "schedule"]
    assert len(rows) == len(truth)
    assert all(num(r, "cached_free_blocks") == 0 and num(r, "prefix_queries") == 0 for r in rows)
    assert table(core, "kv_cache_evictions") == []
    assert all(t["stats"].prefix_cache_stats.queries == 0 for t in truth)
    for r, t in zip(rows, truth, strict=True):
        assert num(r, "free_blocks") == t["free"]


def test_reset_prefix_cache_empties_the_evictable_set_without_evictions(model_dir, probes):
    core, _ = probes
    s = make_scheduler(model_dir, num_blocks=14)
    run(s, make_requests(4, shared_prefix=40))
    pool = s.kv_cache_manager.block_pool
    assert free_cached(pool)  # finished requests left cached blocks behind
    assert s.reset_prefix_cache()
    assert free_cached(pool) == []
    evicted = len(table(core, "kv_cache_evictions"))
    truth = run(s, make_requests(4, seed=5))
    rows = [r for r in table(core, "kv_cache_usage") if r["point"] == "schedule"]
    assert num(rows[-len(truth)], "cached_free_blocks") == truth[0]["cached_free"]
    # The reset dropped every hash without evictions: the second run's evictions are exactly the
    # BlockRemoved events vLLM emitted during it (the reset itself emits AllBlocksCleared).
    assert len(table(core, "kv_cache_evictions")) == evicted + sum(t["removed"] for t in truth)


def test_hooks_never_call_vllm_methods_that_reset_counters(model_dir, probes, monkeypatch):
    """make_stats / make_prefix_cache_stats / take_events / drain_events are vLLM's: the probes must
    not call them (they would steal vLLM's numbers). Count calls with statistics off, where vLLM
    itself never calls make_prefix_cache_stats."""
    from vllm.v1.core.kv_cache_manager import KVCacheManager

    calls = []
    orig = KVCacheManager.make_prefix_cache_stats

    def spy(self):
        calls.append(1)
        return orig(self)

    monkeypatch.setattr(KVCacheManager, "make_prefix_cache_stats", spy)
    s = make_scheduler(model_dir, num_blocks=14, log_stats=False)
    run(s, make_requests(6, shared_prefix=40))
    assert calls == []


def test_profiling_started_late_counts_the_cached_blocks_already_free(model_dir, tmp_path):
    """Probes applied to a scheduler that already ran: the first step's cached_free_blocks and the
    evictions that follow still match the pool and vLLM's BlockRemoved events."""
    s = make_scheduler(model_dir, num_blocks=14)
    run(s, make_requests(4, shared_prefix=40))  # unprofiled: leaves cached free blocks behind
    assert free_cached(s.kv_cache_manager.block_pool)
    core = Core(tmp_path / "late")
    wd = ModuleWatchdog()
    wd.install()
    reg = Registry(KV.TARGETS, core.recorder, watchdog=wd, vllm_version=vllm.__version__)
    reg.activate()
    try:
        truth = run(s, make_requests(8, seed=3))
        rows = [r for r in table(core, "kv_cache_usage") if r["point"] == "schedule"]
        assert [num(r, "cached_free_blocks") for r in rows] == [t["cached_free"] for t in truth]
        assert len(table(core, "kv_cache_evictions")) == sum(t["removed"] for t in truth) > 0
    finally:
        reg.deactivate()
        wd.uninstall()
        _core.stop()
