"""Preemptions: which request lost its KV cache, why, and what getting it back cost.

Writes ``preemption_events.csv`` (one row per preemption, per resume, per prefix-cache reset) and
``preemption_steps.csv`` (one row per scheduler step: the step's preemptions, resumes and
recomputed tokens). Read in vLLM 0.32.0's ``v1/core/sched/scheduler.py`` (line numbers of that
file):

* ``Scheduler._preempt_request(self, request, timestamp, drop_stale_output=False)`` (:1571) is the
  one place a request is preempted: it frees the request's blocks, sets ``num_computed_tokens = 0``
  and ``num_preemptions += 1`` (:1589-1608) and puts it at the front of the waiting queue. Its
  callers: ``schedule()`` when ``allocate_slots`` fails for a running request (:776-840, reason
  ``kv_cache_exhausted``), and ``reset_prefix_cache(reset_running_requests=True)`` (:2850-2860,
  reason ``prefix_cache_reset``). The before hook reads the request *before* the reset: its
  ``num_computed_tokens`` is the KV dropped (``kv_tokens_dropped``). The wrapped call is the
  ``preempted`` row itself. ``Request.num_preemptions`` is kept with vLLM's statistics on or off
  (the ``PREEMPTED`` event behind ``vllm:num_preemptions`` only with them on, :1609-1610).
* A preempted request comes back through the waiting loop of ``schedule()``: with
  ``num_computed_tokens == 0`` it gets a fresh prefix-cache lookup (:960-966), so blocks it freed
  that are still cached (freed blocks stay in the cache until evicted) are given back; then
  ``request.num_computed_tokens = num_computed_tokens`` (:1369) and ``_update_after_schedule``
  adds the step's tokens (:1628-1629). So after ``schedule()`` returns, the tokens the cache gave
  back are ``request.num_computed_tokens - num_scheduled_tokens[id]`` (``prefix_hit_tokens``), and
  the tokens really recomputed are ``kv_tokens_dropped - prefix_hit_tokens``. The schedule after
  hook finds the resumed ids in ``scheduled_cached_reqs.resumed_req_ids`` (V1 runner) or in
  ``scheduled_new_reqs`` (V2 runner, :1418-1419).
* State: per scheduler, only the requests preempted and not yet back (id -> preemption time,
  tokens dropped, step, reason). An entry leaves on resume, or when the request's id shows up in a
  ``SchedulerOutput.finished_req_ids`` (aborted while preempted), and the table is capped at
  ``MAX_PENDING`` entries (oldest dropped first).

Request ids are per-request strings, which the core's interned-string table must not hold (it
lives as long as the process): they travel inside the row (the ``text`` column source).
"""

from __future__ import annotations

import weakref

from profilemate.probes import steps
from profilemate.probes.spec import ENGINECORE, Column, Hooks, Table, Target

MAX_PENDING = 1 << 16
KV_EXHAUSTED = "kv_cache_exhausted"
PREFIX_RESET = "prefix_cache_reset"

EVENTS = Table(
    "preemption_events",
    (
        Column("timestamp_sec", "ts_sec", "s", "when it happened, seconds since the session start"),
        Column("step_id", "step", "", "engine step (a reset between steps: the last step)"),
        Column("event", "name", "", "preempted, resumed or prefix_cache_reset"),
        Column("request_id", "text", "", "vLLM's request id (empty on prefix_cache_reset rows)"),
        Column("reason", "s0", "", "kv_cache_exhausted or prefix_cache_reset"),
        Column(
            "kv_tokens_dropped", "a1", "tokens", "computed tokens whose KV the preemption freed"
        ),
        Column("num_tokens", "a2", "tokens", "the request's prompt + output tokens at the event"),
        Column("output_tokens", "a3", "tokens", "the request's output tokens at the event"),
        Column("num_preemptions", "a4", "", "the request's preemptions so far, this one included"),
        Column("prefix_hit_tokens", "a5", "tokens", "resumed: tokens the prefix cache gave back"),
        Column("recomputed_tokens", "a6", "tokens", "resumed: dropped tokens computed again"),
        Column("preempted_sec", "a7", "s", "resumed: time from the preemption to the resume"),
        Column("preempted_step", "a8", "", "resumed: the step of the preemption"),
        Column("duration_ms", "dur_ms", "ms", "wall time of vLLM's call (0 for resumed rows)"),
    ),
    doc="one row per preemption, resume and prefix-cache reset",
)
STEPS = Table(
    "preemption_steps",
    (
        Column("timestamp_sec", "ts_sec", "s", "schedule() start, seconds since the session start"),
        Column("step_id", "step", "", "engine step (vLLM's Scheduler.current_step)"),
        Column("preempted_reqs", "a0", "requests", "requests preempted inside this schedule()"),
        Column("resumed_reqs", "a1", "requests", "preempted requests scheduled again"),
        Column("prefix_hit_tokens", "a2", "tokens", "Σ prefix_hit_tokens of those resumes"),
        Column("recomputed_tokens", "a3", "tokens", "Σ recomputed_tokens of those resumes"),
        Column("preempted_waiting", "a4", "requests", "requests preempted and not back yet"),
    ),
    doc="one row per Scheduler.schedule() call",
)
TABLES = (EVENTS, STEPS)


class _State:
    __slots__ = ("pending", "resetting", "preempted_now")

    def __init__(self) -> None:
        # request id -> (preempted at ns, kv tokens dropped, step, reason id)
        self.pending: dict[str, tuple] = {}
        self.resetting = False
        self.preempted_now = 0


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # scheduler -> _State


def _state(scheduler) -> _State:
    st = _STATES.get(scheduler)
    if st is None:
        st = _STATES[scheduler] = _State()
    return st


def preempt_hooks(ctx) -> Hooks:
    rec = ctx.recorder
    now_ns, current_step = rec.now_ns, rec.current_step
    kv, reset = ctx.intern(KV_EXHAUSTED), ctx.intern(PREFIX_RESET)

    def before(self, request):
        st = _state(self)
        rid = request.request_id
        dropped = request.num_computed_tokens
        reason = reset if st.resetting else kv
        pending = st.pending
        if len(pending) >= MAX_PENDING and rid not in pending:
            del pending[next(iter(pending))]
        pending[rid] = (now_ns(), dropped, current_step(), reason)
        st.preempted_now += 1
        return (
            rid,  # a str: the row's text column
            reason,
            dropped,
            request.num_tokens,
            request.num_output_tokens,
            request.num_preemptions + 1,
        )

    return Hooks(before)


def reset_hooks(ctx) -> Hooks:
    reason = ctx.intern(PREFIX_RESET)

    def before(self, reset_running_requests):
        _state(self).resetting = bool(reset_running_requests)
        return reason

    def after(result, self, reset_running_requests):
        _state(self).resetting = False

    return Hooks(before, after)


def schedule_hooks(ctx) -> Hooks:
    rec = ctx.recorder
    now_ns = rec.now_ns
    events = ctx.table_id(EVENTS)
    resumed_name = ctx.intern("resumed")

    def before(self):
        st = _state(self)
        st.resetting = False  # a reset that raised never reached its after hook
        st.preempted_now = 0
        return steps.schedule_before(self)

    def after(result, self):
        step = steps.schedule_after(result, self)
        st = _state(self)
        pending = st.pending
        if not pending:
            return (st.preempted_now, 0, 0, 0, 0)
        so = result
        for rid in so.finished_req_ids:  # aborted while preempted
            pending.pop(rid, None)
        back = [rid for rid in so.scheduled_cached_reqs.resumed_req_ids if rid in pending]
        for nr in so.scheduled_new_reqs:  # V2 runner: resumed requests are listed as new
            if nr.req_id in pending:
                back.append(nr.req_id)
        hits = recomputed = 0
        if back:
            nst = so.num_scheduled_tokens
            requests = self.requests
            t = now_ns()
            for rid in back:
                t0, dropped, pstep, reason = pending.pop(rid)
                req = requests[rid]
                hit = req.num_computed_tokens - nst[rid]
                redo = max(dropped - hit, 0)
                hits += hit
                recomputed += redo
                values = (
                    reason,
                    dropped,
                    req.num_tokens,
                    req.num_output_tokens,
                    req.num_preemptions,
                    hit,
                    redo,
                    (t - t0) / 1e9,
                    pstep,
                )
                rec.row(events, resumed_name, step, values, ts_ns=t, text=rid)
        return (st.preempted_now, len(back), hits, recomputed, len(pending))

    return Hooks(before, after)


TARGETS = (
    Target(
        "vllm.v1.core.sched.scheduler:Scheduler._preempt_request", "preempted", EVENTS,
        hooks=preempt_hooks, roles=ENGINECORE,
        note="the request's state before vLLM resets it (KV tokens dropped)",
    ),
    Target(
        "vllm.v1.core.sched.scheduler:Scheduler.reset_prefix_cache", "prefix_cache_reset", EVENTS,
        hooks=reset_hooks, roles=ENGINECORE,
        note="labels the preemptions it makes (reset_running_requests=True)",
    ),
    Target(
        "vllm.v1.core.sched.scheduler:Scheduler.schedule", "schedule", STEPS,
        hooks=schedule_hooks, sets_step=True, roles=ENGINECORE,
        alternatives=("vllm.v1.core.scheduler:Scheduler.schedule",),
        note="resumes of preempted requests, with the tokens really recomputed",
    ),
)  # fmt: skip
