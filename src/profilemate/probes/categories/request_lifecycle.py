"""Request lifecycle: one row per request when it finishes, in the EngineCore and in the API.

Writes ``request_lifecycle.csv`` (one row per finished request, per process that saw it) and
``request_flow.csv`` (one row per call of the vLLM methods this category observes, with how many
requests entered a lifecycle stage in that call). Never the prompt, the output text or token ids:
only the request id, times, counts and the finish reason.

**One clock.** Every ``*_s`` column of ``request_lifecycle.csv`` is CLOCK_MONOTONIC seconds, the
clock of ``time.monotonic()``: vLLM's own engine timestamps (``Request`` events,
``EngineCoreOutputs.timestamp``) are on it, and so is ProfileMate's core (``timestamp_sec`` =
that clock minus ``session_start_ns``). ``Request.arrival_time`` is the API's wall clock
(``time.time()`` in ``BaseRenderer.render_*``); it is converted when the request is first seen, with
a wall/monotonic pair read at that moment (``arrival_s = arrival_time - (time.time() -
time.monotonic())``), so an NTP step between arrival and finish does not shift the other columns.

EngineCore (vLLM 0.32.0, ``v1/core/sched/scheduler.py``)
  * ``Scheduler.add_request(request)`` (:2616): a new id (not yet in ``self.requests``; a streaming
    update of a known id is not a new request) is tracked: arrival, queued time, prompt tokens.
  * ``Scheduler.schedule()`` (:591): first sighting of a tracked id in
    ``SchedulerOutput.scheduled_new_reqs`` (:1502) = first scheduled, at the ``schedule()`` call's
    start (vLLM's SCHEDULED event uses that instant too). Resumed requests also appear there
    (:1418-1420, V2 runner); only the first sighting counts.
  * ``Scheduler.update_from_output(scheduler_output, model_runner_output)`` (:2026): a tracked
    request that was scheduled and now has ``num_output_tokens > 0`` got its first token in this
    step (only the requests still waiting for one are looked at, not the batch).
  * ``Scheduler._free_request(request)`` (:2714): every finish path goes through it exactly once
    (a stop/length in ``update_from_output`` :2230, aborts and errors through ``finish_requests``
    :2710); its row is the request's lifecycle row, and the tracked state is dropped there.
API process (``v1/engine/output_processor.py``)
  * ``OutputProcessor.add_request`` (:616): tracked from here (arrival, queued = handed to the
    engine).
  * ``OutputProcessor.process_outputs(engine_core_outputs, engine_core_timestamp, ...)`` (:681):
    first output with tokens = first token; an output with a ``finish_reason`` (or an id in
    ``reqs_to_abort``: a stop string the detokenizer found, :816-820) = finished. Under
    ``AsyncLLM`` it runs once per chunk of ``VLLM_V1_OUTPUT_PROC_CHUNK_SIZE`` outputs
    (async_llm.py:843-868), so one engine step may give several ``process_outputs`` rows with the
    same ``engine_timestamp``.
  * ``OutputProcessor.abort_requests`` (:552): aborted ids are finished with reason ``abort``.

**Joining API rows to engine steps.** ``EngineCoreOutputs`` is a msgspec struct (no extra
attributes), so no step id can travel on it. Its ``timestamp`` (``time.monotonic()`` in the
EngineCore, set in ``__post_init__`` when ``update_from_output`` builds it, v1/engine/__init__.py:
288-290) does travel, and the API's ``process_outputs`` receives it as ``engine_core_timestamp``.
The EngineCore's ``update_from_output`` rows (here and in ``cpu_operations_timing.csv``) record it
as ``engine_timestamp`` next to their ``step_id``; the API's rows record the value they received.
Both are the same Python float printed in its shortest round-trip form: the join is on equal text.

Bounded: at most ``MAX_TRACKED`` requests are tracked per process (the rest get rows with empty
times and are counted in ``request_flow.csv``'s ``tracked`` column no more); each is dropped when it
finishes. Recomputed tokens after a preemption are in ``preemption_events.csv`` (category
``preemptions``), not here: only the preemption count is, from vLLM's ``Request.num_preemptions``.
"""

from __future__ import annotations

import math
import time

from profilemate.probes import steps
from profilemate.probes.spec import API, ENGINECORE, Column, Hooks, Table, Target

MAX_TRACKED = 65536
NAN = math.nan

REQUEST_LIFECYCLE = Table(
    "request_lifecycle",
    (
        Column("timestamp_sec", "ts_sec", "s", "when the row was recorded (the finish), seconds since the session start"),
        Column("step_id", "step", "", "EngineCore: the engine step in which the request finished; API: empty"),
        Column("request_id", "text", "", "vLLM's internal request id (the same in the API and the EngineCore); travels in the row, never interned"),
        Column("finish_reason", "s0", "", "stop, length, abort, error, repetition"),
        Column("arrival_s", "a1", "s", "Request.arrival_time, converted to CLOCK_MONOTONIC seconds"),
        Column("queued_s", "a2", "s", "EngineCore: Scheduler.add_request; API: OutputProcessor.add_request"),
        Column("first_scheduled_s", "a3", "s", "start of the first schedule() that scheduled it (EngineCore)"),
        Column("first_token_s", "a4", "s", "EngineCore: end of the update_from_output that gave the first token; API: end of the process_outputs that delivered it"),
        Column("finish_s", "a5", "s", "when it finished (EngineCore: _free_request; API: process_outputs / abort_requests)"),
        Column("prompt_tokens", "a6", "tokens", "prompt length"),
        Column("output_tokens", "a7", "tokens", "tokens generated (API: after stop-string trimming)"),
        Column("num_preemptions", "a8", "preemptions", "times vLLM preempted it (EngineCore)"),
        Column("first_scheduled_step", "a9", "", "engine step of the first schedule (EngineCore)"),
        Column("first_token_step", "a10", "", "engine step that produced the first token (EngineCore)"),
        Column("first_token_engine_timestamp", "a11", "s", "API: EngineCoreOutputs.timestamp of the output with the first token"),
        Column("finish_engine_timestamp", "a12", "s", "API: EngineCoreOutputs.timestamp of the output that finished it"),
    ),
    doc="one row per finished request, per process (EngineCore, API)",
)  # fmt: skip

REQUEST_FLOW = Table(
    "request_flow",
    (
        Column("timestamp_sec", "ts_sec", "s", "span start, seconds since the session start"),
        Column("step_id", "step", "", "engine step (EngineCore; empty in the API)"),
        Column("operation", "name", "", "the observed vLLM method"),
        Column("duration_ms", "dur_ms", "ms", "host wall time of the call"),
        Column("entered", "a0", "requests", "requests that entered a stage in this call: add_request: new; schedule: first scheduled; update_from_output / process_outputs: first token"),
        Column("finished", "a1", "requests", "requests that finished in this call"),
        Column("tracked", "a2", "requests", "requests the probe tracks after the call (bounded)"),
        Column("engine_timestamp", "a3", "s", "update_from_output / process_outputs: EngineCoreOutputs.timestamp (the API-EngineCore join key)"),
        Column("context", "ctx", "", "the wrapped function's qualified name"),
    ),
    doc="one row per call of a method the request_lifecycle category observes",
)  # fmt: skip
TABLES = (REQUEST_LIFECYCLE, REQUEST_FLOW)

# Per-request state, a list indexed by these slots (a list: no per-request object beyond it).
ARRIVAL, QUEUED, FIRST_SCHED, FIRST_TOKEN, PROMPT, SCHED_STEP, TOKEN_STEP, FT_ENGINE_TS, OUT = (
    range(9)
)


def _new_state(arrival_wall, prompt_tokens, now_s: float) -> list:
    try:
        arrival = float(arrival_wall) - (time.time() - time.monotonic())
    except (TypeError, ValueError):
        arrival = NAN
    return [arrival, now_s, NAN, NAN, prompt_tokens, NAN, NAN, NAN, 0]


class _Ids:
    """Interned ids, cached: finish reasons (a handful). Request ids are never interned (the core
    keeps interned strings for the process's life): they go in the row's text column."""

    def __init__(self, recorder) -> None:
        self.rec = recorder  # None when `profilemate doctor` builds the hooks to check signatures
        self._table = self._name = None
        self._reasons: dict = {}

    @property
    def table(self) -> int:
        if self._table is None:
            self._table = self.rec.table(REQUEST_LIFECYCLE)
        return self._table

    @property
    def name(self) -> int:
        if self._name is None:
            self._name = self.rec.intern("request")
        return self._name

    def reason(self, r) -> int:
        sid = self._reasons.get(r)
        if sid is None:
            sid = self.rec.intern(str(r).lower() if r is not None else "")
            if len(self._reasons) < 64:
                self._reasons[r] = sid
        return sid


# --- EngineCore ---------------------------------------------------------------------------------
class EngineTracker:
    """Shared by the EngineCore targets of one process (one ``Scheduler`` per EngineCore)."""

    def __init__(self) -> None:
        self.states: dict[str, list] = {}
        self.awaiting: set[str] = set()  # scheduled, no token yet
        self.sched_start = NAN
        self.freed = 0  # _free_request calls (finishes), for update_from_output's `finished`
        self.freed_mark = 0
        self.first_tokens = 0  # first tokens seen, for update_from_output's `entered`
        self.first_mark = 0

    def clear(self) -> None:
        self.states.clear()
        self.awaiting.clear()


ENGINE = EngineTracker()


def ec_add_request_hooks(ctx) -> Hooks:
    rec, tr = ctx.recorder, ENGINE

    def before(self, request):
        rid = request.request_id
        if rid in self.requests or rid in tr.states:
            return 0, 0, len(tr.states), NAN  # a streaming update of a known request
        if len(tr.states) >= MAX_TRACKED:
            return 0, 0, len(tr.states), NAN
        tr.states[rid] = _new_state(
            request.arrival_time, request.num_prompt_tokens, rec.now_ns() * 1e-9
        )
        return 1, 0, len(tr.states), NAN

    return Hooks(before)


def ec_schedule_hooks(ctx) -> Hooks:
    rec, tr = ctx.recorder, ENGINE

    def before(self):
        tr.sched_start = rec.now_ns() * 1e-9
        return steps.schedule_before(self)

    def after(result, self):
        step = steps.schedule_after(result, self)
        n = 0
        if result is not None and tr.states:
            states, t = tr.states, tr.sched_start
            for nr in result.scheduled_new_reqs:
                st = states.get(nr.req_id)
                if st is not None and st[FIRST_SCHED] != st[FIRST_SCHED]:  # nan: not yet
                    st[FIRST_SCHED] = t
                    st[SCHED_STEP] = step
                    tr.awaiting.add(nr.req_id)
                    n += 1
        return n, 0, len(tr.states), NAN

    return Hooks(before, after)


def ec_update_from_output_hooks(ctx) -> Hooks:
    rec, tr = ctx.recorder, ENGINE

    def before(self, scheduler_output):
        tr.freed_mark = tr.freed
        tr.first_mark = tr.first_tokens
        step = steps.of(scheduler_output, None)
        return rec.current_step() if step is None else step

    def after(result, self, scheduler_output):
        if tr.awaiting:
            now = rec.now_ns() * 1e-9
            step = steps.of(scheduler_output, None)
            requests, states = self.requests, tr.states
            done = []
            for rid in tr.awaiting:
                req = requests.get(rid)
                st = states.get(rid)
                if req is None or st is None:
                    done.append(rid)  # finished (its row is written) or untracked
                elif req.num_output_tokens > 0:
                    st[FIRST_TOKEN] = now
                    st[TOKEN_STEP] = step if step is not None else rec.current_step()
                    done.append(rid)
                    tr.first_tokens += 1
            tr.awaiting.difference_update(done)
        ts = NAN
        if result:
            for eco in result.values():
                ts = eco.timestamp
                break
        n_first, n_fin = tr.first_tokens - tr.first_mark, tr.freed - tr.freed_mark
        return n_first, n_fin, len(tr.states), ts

    return Hooks(before, after)


def ec_free_request_hooks(ctx) -> Hooks:
    rec, tr = ctx.recorder, ENGINE
    ids = _Ids(rec)

    def before(self, request):
        rid = request.request_id
        now = rec.now_ns() * 1e-9
        st = tr.states.pop(rid, None)
        tr.awaiting.discard(rid)
        tr.freed += 1
        if st is None:
            st = [NAN, NAN, NAN, NAN, request.num_prompt_tokens, NAN, NAN, NAN, 0]
        n_out = request.num_output_tokens
        if n_out > 0 and st[FIRST_TOKEN] != st[FIRST_TOKEN]:  # first token in this very step
            st[FIRST_TOKEN] = now
            st[TOKEN_STEP] = rec.current_step()
            tr.first_tokens += 1
        reason = request.get_finished_reason()  # FinishReason.STOP is 0: test for None
        return (
            rid,  # a str: the row's text column (request ids never enter the interner)
            ids.reason(request.status.name if reason is None else reason),
            st[ARRIVAL],
            st[QUEUED],
            st[FIRST_SCHED],
            st[FIRST_TOKEN],
            now,
            st[PROMPT],
            n_out,
            request.num_preemptions,
            st[SCHED_STEP],
            st[TOKEN_STEP],
            NAN,
            NAN,
        )

    return Hooks(before)


# --- API process --------------------------------------------------------------------------------
class ApiTracker:
    def __init__(self) -> None:
        self.states: dict[str, list] = {}

    def clear(self) -> None:
        self.states.clear()


API_STATE = ApiTracker()


def _prompt_len(request) -> int:
    ids = request.prompt_token_ids
    if ids is not None:
        return len(ids)
    emb = getattr(request, "prompt_embeds", None)
    return int(emb.shape[0]) if emb is not None else 0


def _api_row(ids: _Ids, rid: str, st: list, reason, now: float, engine_ts: float) -> tuple:
    return (
        ids.reason(reason),
        st[ARRIVAL],
        st[QUEUED],
        NAN,
        st[FIRST_TOKEN],
        now,
        st[PROMPT],
        st[OUT],
        NAN,
        NAN,
        NAN,
        st[FT_ENGINE_TS],
        engine_ts,
    )


def api_add_request_hooks(ctx) -> Hooks:
    rec, tr = ctx.recorder, API_STATE

    def after(result, self, request):
        rid = request.request_id
        if rid in tr.states or len(tr.states) >= MAX_TRACKED:
            return 0, 0, len(tr.states), NAN  # a streaming update of a known request
        tr.states[rid] = _new_state(request.arrival_time, _prompt_len(request), rec.now_ns() * 1e-9)
        return 1, 0, len(tr.states), NAN

    return Hooks(after=after)


def api_process_outputs_hooks(ctx) -> Hooks:
    rec, tr = ctx.recorder, API_STATE
    ids = _Ids(rec)

    def after(result, self, engine_core_outputs, engine_core_timestamp):
        states = tr.states
        ts = NAN if engine_core_timestamp is None else engine_core_timestamp
        if not states:
            return 0, 0, 0, ts
        now = rec.now_ns() * 1e-9
        n_first = n_fin = 0
        finished = None
        # One pass over the outputs, after vLLM's own (stop-string trimming included).
        for o in engine_core_outputs:
            st = states.get(o.request_id)
            if st is None:
                continue
            toks = o.new_token_ids
            if toks:
                if st[OUT] == 0:
                    st[FIRST_TOKEN] = now
                    st[FT_ENGINE_TS] = ts
                    n_first += 1
                st[OUT] += len(toks)
            if o.finish_reason is not None:
                if finished is None:
                    finished = []
                finished.append((o.request_id, o.finish_reason))
        stopped = getattr(result, "reqs_to_abort", None)  # stop strings found by the detokenizer
        if stopped:
            if finished is None:
                finished = []
            done = {rid for rid, _ in finished}
            finished.extend((rid, "stop") for rid in stopped if rid not in done)
        if finished:
            live = self.request_states
            for rid, reason in finished:
                if rid in live:  # a streaming-input request goes on with its next chunk
                    continue
                st = states.pop(rid, None)
                if st is not None:
                    rec.row(
                        ids.table, ids.name, -1, _api_row(ids, rid, st, reason, now, ts), text=rid
                    )
                    n_fin += 1
        return n_first, n_fin, len(states), ts

    return Hooks(after=after)


def api_abort_requests_hooks(ctx) -> Hooks:
    rec, tr = ctx.recorder, API_STATE
    ids = _Ids(rec)

    def after(result, self):
        n = 0
        if result and tr.states:
            now = rec.now_ns() * 1e-9
            for rid in result:
                st = tr.states.pop(rid, None)
                if st is not None:
                    rec.row(
                        ids.table, ids.name, -1, _api_row(ids, rid, st, "abort", now, NAN), text=rid
                    )
                    n += 1
        return 0, n, len(tr.states), NAN

    return Hooks(after=after)


_SCHED = "vllm.v1.core.sched.scheduler:Scheduler."
_OLD_SCHED = "vllm.v1.core.scheduler:Scheduler."
_OUT = "vllm.v1.engine.output_processor:OutputProcessor."

TARGETS = (
    # EngineCore. v1/core/scheduler.py is the older location of the V1 scheduler.
    Target(_SCHED + "add_request", "add_request", REQUEST_FLOW, hooks=ec_add_request_hooks,
           roles=ENGINECORE, alternatives=(_OLD_SCHED + "add_request",)),
    Target(_SCHED + "schedule", "schedule", REQUEST_FLOW, hooks=ec_schedule_hooks,
           sets_step=True, roles=ENGINECORE, alternatives=(_OLD_SCHED + "schedule",)),
    Target(_SCHED + "update_from_output", "update_from_output", REQUEST_FLOW,
           hooks=ec_update_from_output_hooks, sets_step=True, roles=ENGINECORE,
           alternatives=(_OLD_SCHED + "update_from_output",)),
    Target(_SCHED + "_free_request", "request", REQUEST_LIFECYCLE, hooks=ec_free_request_hooks,
           roles=ENGINECORE, alternatives=(_OLD_SCHED + "_free_request",),
           note="every finish path (stop, length, abort, error) calls it once"),
    # API process (or the user's own process with the offline LLM).
    Target(_OUT + "add_request", "add_request", REQUEST_FLOW, hooks=api_add_request_hooks,
           roles=API),
    Target(_OUT + "process_outputs", "process_outputs", REQUEST_FLOW,
           hooks=api_process_outputs_hooks, roles=API,
           note="AsyncLLM calls it once per chunk of outputs: several rows per engine step"),
    Target(_OUT + "abort_requests", "abort_requests", REQUEST_FLOW,
           hooks=api_abort_requests_hooks, roles=API),
)  # fmt: skip
