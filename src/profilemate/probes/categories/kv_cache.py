"""KV cache: block usage per engine step, prefix-cache lookups, evictions of cached blocks.

Writes (EngineCore process) ``kv_cache_usage.csv``, ``kv_cache_evictions.csv`` and
``kv_prefix_cache_lookups.csv`` (columns: docs/OUTPUTS.md). The block-pool targets record no row of
their own (``table=None``): they only feed the eviction clock.

Where the numbers come from (vLLM 0.32.0, ``vllm/v1/core``):

- **Usage.** ``BlockPool`` holds ``num_gpu_blocks`` blocks; block 0 is the null block, taken out of
  the free queue at construction and never freed, so ``num_gpu_blocks - 1`` blocks are usable.
  ``get_num_free_blocks()`` is the length of the free queue, which *includes* cached blocks nobody
  holds (evictable: reused on a prefix hit, evicted when the pool hands them out again), and
  ``get_usage()`` is ``1 - free / (num_gpu_blocks - 1)`` (``block_pool.py``). The row records
  exactly those: ``usage_pct = 100 * get_usage()``, ``used = (num_gpu_blocks - 1) - free`` (blocks
  some request holds: ref count > 0). vLLM's own ``SchedulerStats.kv_cache_usage`` is
  ``kv_cache_manager.usage`` (= ``block_pool.get_usage()``), sampled inside
  ``Scheduler.update_from_output`` by ``make_stats()``, after the step's finished requests freed
  their blocks. So each step has two rows: ``schedule`` (after ``schedule()``: the step's blocks are
  allocated, its peak) and ``update`` (after ``update_from_output()``: vLLM's sampling point).
- **Prefix cache.** ``KVCacheManager.record_prefix_cache_stats(request, num_hits)`` is called by
  ``schedule()`` once per admitted request that looked the cache up (``scheduler.py``: "Record at
  admission so unscheduled lookups are not counted"); its body counts only when
  ``log_stats and prefix_cache_lookup_enabled(request)``, queries = ``request.num_tokens``, hits =
  ``num_hits``, and splits requests with ``num_preemptions > 0`` off as "preempted"
  (``PrefixCacheStats.record``, ``v1/metrics/stats.py``). The probe counts the same calls under
  the same condition minus ``log_stats`` (it works with vLLM's statistics off) and sums them per step.
  ``get_computed_blocks`` is not used: it also runs for requests that are then not admitted.
- **Evictions.** ``BlockPool.get_new_blocks`` takes blocks off the head of the free queue with
  ``FreeKVCacheBlockQueue.popleft_n(n)`` and then, per block, ``_maybe_evict_cached_block``: a block
  that still has a hash (``block_hash is not None``) loses it -- that is an eviction. The probe
  hooks ``popleft_n`` (one call per allocation, not per block): its result still carries the
  hashes, and a C++ ``IdClock`` walks the list, stamps each block's birth and records one
  ``kv_cache_evictions`` row per block that had a hash. ``FreeKVCacheBlockQueue.append_n`` (free
  blocks with a hash go to the tail, ``BlockPool.free_blocks``) stamps "released, still cached";
  ``BlockPool.touch`` (a prefix hit) counts the reuse; ``BlockPool.reset_prefix_cache`` drops
  every hash at once (vLLM does not evict there; neither does the probe). Arrays are sized once
  from ``num_gpu_blocks``. ``KVCacheBlock`` is a slotted dataclass whose ``block_hash`` property
  reads the slot ``_block_hash``: C++ reads the slot when it exists. Each time the probes are
  applied (and when the scheduler's pool changes) the next ``schedule()`` binds the pool afresh:
  one pass over the free queue (``get_all_free_blocks``) counts the cached free blocks already
  there, so a late start is exact too.

Never called: ``make_stats``, ``make_prefix_cache_stats``, ``take_events``, ``drain_events`` (they
reset vLLM's counters). Limits: blocks vLLM's KV connector evicts with ``evict_blocks`` lose their
hash outside the allocation path; such a block is counted when the pool hands it out again only if
it still had a hash, so connector evictions are not in ``kv_cache_evictions`` (no connector on the
CPU build). Only the scheduler's own pool is watched (other pools' queues are ignored and counted).
"""

from __future__ import annotations

import logging
import weakref

from profilemate.probes import steps
from profilemate.probes.spec import ENGINECORE, Column, Hooks, Table, Target

log = logging.getLogger("profilemate")

SCHEDULER = "vllm.v1.core.sched.scheduler:Scheduler"
OLD_SCHEDULER = "vllm.v1.core.scheduler:Scheduler"  # before v1/core/sched/ existed
KV_MANAGER = "vllm.v1.core.kv_cache_manager:KVCacheManager"
BLOCK_POOL = "vllm.v1.core.block_pool:BlockPool"
FREE_QUEUE = "vllm.v1.core.kv_cache_utils:FreeKVCacheBlockQueue"

USAGE = Table(
    "kv_cache_usage",
    (
        Column("timestamp_sec", "end_sec", "s", "when the state was read (end of the call)"),
        Column("step_id", "step", "", "engine step"),
        Column("point", "name", "", "schedule (after schedule()) or update (after update_from_output())"),
        Column("scheduled_tokens", "a0", "tokens", "tokens the step scheduled"),
        Column("used_blocks", "a1", "blocks", "blocks held by requests (ref count > 0)"),
        Column("free_blocks", "a2", "blocks", "free blocks, including cached_free_blocks"),
        Column("cached_free_blocks", "a3", "blocks", "free blocks still holding a cached prefix (evictable)"),
        Column("total_blocks", "a4", "blocks", "the pool's num_gpu_blocks (null block included)"),
        Column("usage_pct", "a5", "%", "100 * BlockPool.get_usage()"),
        Column("prefix_queries", "a6", "tokens", "prefix-cache lookups of fresh requests admitted in the step"),
        Column("prefix_hits", "a7", "tokens", "tokens found in the prefix cache for them"),
        Column("prefix_requests", "a8", "requests", "fresh requests that looked the cache up"),
        Column("preempted_prefix_queries", "a9", "tokens", "the same for resumed (preempted) requests"),
        Column("preempted_prefix_hits", "a10", "tokens", "hits of resumed (preempted) requests"),
        Column("preempted_prefix_requests", "a11", "requests", "resumed requests that looked the cache up"),
        Column("evicted_blocks", "a12", "blocks", "cached blocks evicted since the previous row"),
        Column("duration_ms", "dur_ms", "ms", "wall time of the call"),
    ),
    doc="two rows per engine step: after schedule() and after update_from_output()",
)  # fmt: skip
EVICTIONS = Table(
    "kv_cache_evictions",
    (
        Column("timestamp_sec", "ts_sec", "s", "when the block was handed out again"),
        Column("step_id", "step", "", "engine step"),
        Column("block_id", "a0", "", "the block's id in the pool"),
        Column("lifetime_s", "a1", "s", "since the block's allocation"),
        Column("idle_s", "a2", "s", "since it was last released (cached, held by nobody)"),
        Column("prefix_hits", "a3", "hits", "prefix-cache hits on it since its allocation"),
    ),
    doc="one row per cached block evicted (its hash dropped when the pool reuses it)",
)  # fmt: skip
LOOKUPS = Table(
    "kv_prefix_cache_lookups",
    (
        Column("timestamp_sec", "ts_sec", "s", "call start"),
        Column("step_id", "step", "", "engine step"),
        Column("query_tokens", "a0", "tokens", "request.num_tokens at admission"),
        Column("hit_tokens", "a1", "tokens", "tokens found in the local prefix cache"),
        Column("preempted", "a2", "", "1 for a resumed (previously preempted) request"),
        Column("counted", "a3", "", "1 when the lookup counts (prefix caching on for the request)"),
    ),
    doc="one row per request admission that looked the prefix cache up",
)  # fmt: skip
TABLES = (USAGE, EVICTIONS, LOOKUPS)

_NO_PREFIX = (0, 0, 0, 0, 0, 0)
_NO_PREFIX_LIST = [0, 0, 0, 0, 0, 0]

# Per-process state shared by the targets of this category (one per recorder, i.e. per session).
_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _State:
    """The scheduler's block pool, its eviction clock and the step's prefix-cache sums."""

    def __init__(self, ctx) -> None:
        self.evict_table = ctx.table_id(EVICTIONS)
        self.evict_name = ctx.intern("evict")
        self.pool = None  # the BlockPool of the scheduler last seen
        self.queue = None  # its free queue: the only one the pool hooks follow
        self.clock = None  # _core.IdClock for that pool
        self.evicted_mark = 0  # clock.evicted at the previous usage row
        self.other_queues = 0  # pool-hook calls on another pool's queue (ignored)
        # fresh queries, hits, requests, preempted queries, hits, requests
        self.prefix = [0, 0, 0, 0, 0, 0]

    def bind(self, pool) -> None:
        """Follow ``pool`` (the first time, or when a new scheduler/pool appears)."""
        from profilemate import _core

        blocks = getattr(pool, "blocks", None) or ()
        block_type = type(blocks[0]) if blocks else None
        # KVCacheBlock is @dataclass(slots=True): `block_hash` is a property over the slot
        # `_block_hash` (vLLM 0.32); older releases have a plain `block_hash` field.
        mark = (
            "_block_hash"
            if block_type is not None and hasattr(block_type, "_block_hash")
            else "block_hash"
        )
        clock = _core.IdClock(self.evict_table, self.evict_name, "block_id", mark)
        clock.reserve(int(pool.num_gpu_blocks))
        queue = getattr(pool, "free_block_queue", None)
        # Blocks already cached and free when profiling starts (a late start, or a restart): one
        # pass over the free queue, once per bind.
        free = getattr(queue, "get_all_free_blocks", None)
        if free is not None:
            clock.release(free())
        self.clock = clock
        self.queue = queue
        self.evicted_mark = 0
        self.pool = pool

    def unbind(self) -> None:
        """Forget the pool: the next schedule() binds it afresh (its state may have moved while
        the probes were off)."""
        self.pool = self.queue = self.clock = None

    def take_prefix(self):
        """The step's prefix-cache sums, reset for the next step (no allocation on most steps)."""
        p = self.prefix
        if p == _NO_PREFIX_LIST:
            return _NO_PREFIX
        self.prefix = [0, 0, 0, 0, 0, 0]
        return p


def _state(ctx) -> _State:
    st = _STATES.get(ctx.recorder)
    if st is None:
        st = _STATES[ctx.recorder] = _State(ctx)
    return st


def _usage_values(st: _State, tokens: int, prefix) -> tuple:
    pool = st.pool
    total = pool.num_gpu_blocks
    free = pool.get_num_free_blocks()
    clock = st.clock
    evicted = clock.evicted
    new_evictions = evicted - st.evicted_mark
    st.evicted_mark = evicted
    return (
        tokens,
        total - 1 - free,
        free,
        clock.parked,
        total,
        100.0 * pool.get_usage(),
        *prefix,
        new_evictions,
    )


def schedule_hooks(ctx) -> Hooks:
    st = _state(ctx)
    st.unbind()  # a new patch: the probes may have been off

    def before(self):
        pool = self.kv_cache_manager.block_pool
        if pool is not st.pool:
            st.bind(pool)
        return steps.schedule_before(self)

    def after(result, self):
        steps.schedule_after(result, self)
        tokens = 0 if result is None else result.total_num_scheduled_tokens
        return _usage_values(st, tokens, st.take_prefix())

    return Hooks(before, after)


def update_hooks(ctx) -> Hooks:
    st = _state(ctx)

    def before(self, scheduler_output):
        # The step this output belongs to (stamped by the schedule() hooks): with a batch queue,
        # update_from_output(N) runs after schedule(N + 1).
        step = steps.of(scheduler_output, None)
        return step if step is not None else getattr(self, "current_step", None)

    def after(result, self, scheduler_output):
        if st.pool is not self.kv_cache_manager.block_pool:
            return None
        return _usage_values(st, scheduler_output.total_num_scheduled_tokens, _NO_PREFIX)

    return Hooks(before, after)


def prefix_hooks(ctx) -> Hooks:
    st = _state(ctx)

    def before(self, request, num_hits):
        # vLLM's own condition minus log_stats (KVCacheManager.record_prefix_cache_stats).
        lookup_enabled = getattr(self, "prefix_cache_lookup_enabled", None)
        counted = lookup_enabled(request) if lookup_enabled is not None else self.enable_caching
        preempted = request.num_preemptions > 0
        queries = request.num_tokens
        if counted:
            p = st.prefix
            i = 3 if preempted else 0
            p[i] += queries
            p[i + 1] += num_hits
            p[i + 2] += 1
        return queries, num_hits, 1 if preempted else 0, 1 if counted else 0

    return Hooks(before)


def allocate_hooks(ctx) -> Hooks:
    st = _state(ctx)

    def after(result, self):  # FreeKVCacheBlockQueue.popleft_n: blocks still carry their hashes
        if self is not st.queue:
            st.other_queues += 1
            return
        st.clock.acquire(result)

    return Hooks(after=after)


def release_hooks(ctx) -> Hooks:
    st = _state(ctx)

    def after(result, self, blocks):  # FreeKVCacheBlockQueue.append_n: freed blocks with a hash
        if self is not st.queue:
            st.other_queues += 1
            return
        st.clock.release(blocks)

    return Hooks(after=after)


def touch_hooks(ctx) -> Hooks:
    st = _state(ctx)

    def after(result, self, blocks):  # BlockPool.touch: a prefix hit takes the blocks
        if self is not st.pool:
            st.other_queues += 1
            return
        st.clock.reuse(blocks)

    return Hooks(after=after)


def reset_hooks(ctx) -> Hooks:
    st = _state(ctx)

    def after(result, self):  # BlockPool.reset_prefix_cache: True when every hash was dropped
        if self is st.pool and result:
            st.clock.clear_marks()

    return Hooks(after=after)


TARGETS = (
    Target(
        f"{SCHEDULER}.schedule", "schedule", USAGE, hooks=schedule_hooks, sets_step=True,
        roles=ENGINECORE, alternatives=(f"{OLD_SCHEDULER}.schedule",),
        note="block usage after the step's allocations; the step's prefix-cache lookups",
    ),
    Target(
        f"{SCHEDULER}.update_from_output", "update", USAGE, hooks=update_hooks, sets_step=True,
        roles=ENGINECORE, alternatives=(f"{OLD_SCHEDULER}.update_from_output",),
        note="block usage after the step's frees (where vLLM samples kv_cache_usage)",
    ),
    Target(
        f"{KV_MANAGER}.record_prefix_cache_stats", "lookup", LOOKUPS, hooks=prefix_hooks,
        roles=ENGINECORE, note="called by schedule() once per admitted request that looked up",
    ),
    Target(
        f"{FREE_QUEUE}.popleft_n", "allocate", None, hooks=allocate_hooks, roles=ENGINECORE,
        note="BlockPool.get_new_blocks takes blocks here, before dropping their hashes (evictions)",
    ),
    Target(
        f"{FREE_QUEUE}.append_n", "release_cached", None, hooks=release_hooks,
        roles=ENGINECORE, note="BlockPool.free_blocks queues blocks that keep their hash here",
    ),
    Target(
        f"{BLOCK_POOL}.touch", "prefix_hit", None, hooks=touch_hooks, roles=ENGINECORE,
        note="a prefix-cache hit takes cached blocks (out of the evictable set when free)",
    ),
    Target(
        f"{BLOCK_POOL}.reset_prefix_cache", "reset_prefix_cache", None, hooks=reset_hooks,
        roles=ENGINECORE, note="drops every cached hash at once (not evictions)",
    ),
)  # fmt: skip
