"""Batch utilization: what every ``Scheduler.schedule()`` put in the batch, and why not more.

Writes ``batch_utilization.csv``, one row per scheduler step (EngineCore), from one after hook on
``Scheduler.schedule`` (stacked with the other categories that wrap it; the step id is vLLM's own
``Scheduler.current_step``, probes/steps.py). Everything is read off the returned
``SchedulerOutput`` and the scheduler's own fields, in one pass; nothing of vLLM is called except
the read-only ``get_request_counts()``. What follows was read in vLLM 0.32.0's
``v1/core/sched/scheduler.py`` (line numbers of that file).

Caps. ``self.max_num_running_reqs`` is ``max_num_seqs`` (:129); admission into RUNNING is gated by
``self.max_num_active_reqs`` (:132-136, = max_num_seqs unless ``max_num_active_seqs`` is set). The
token budget is ``self.max_num_scheduled_tokens`` (:137-141): ``schedule()`` starts from it
(:611) and asserts ``total_num_scheduled_tokens <= max_num_scheduled_tokens`` (:1405).
``scheduler_config.max_num_batched_tokens`` is the *input* budget, which also counts draft slots
under speculative decoding (:613-614) -- equal to the token budget otherwise.

Prefill / decode, per scheduled request, from the ``SchedulerOutput`` alone:
  * ``scheduled_new_reqs``: admitted from the waiting queue this step -- fresh requests, and with
    the V2 model runner also *resumed* ones (:1418-1419): prefill.
  * ``scheduled_cached_reqs`` (running before this step; with the V1 runner also the resumed ones,
    ``resumed_req_ids``): **decode** when the request has output tokens
    (``num_output_tokens > 0``) and is scheduled exactly its last sampled token plus its draft
    tokens (``1 + len(scheduled_spec_decode_tokens[id])``); otherwise prefill (a prompt chunk, or
    a re-prefill after a preemption). A V1 resumed request counts as prefill even when the prefix
    cache gave back all but one token, as with V2.
  So a resumed request's recomputation of its prompt *and earlier outputs* is prefill here (vLLM's
  ``compute_iteration_details`` calls it generation, because it has output tokens).
Fast path (no draft tokens, no prompt chunk among the running requests): the cached requests' tokens
equal their count, so every one is a decode with no per-request Python work.

Why the batch was not fuller (``limit``), in the order ``schedule()`` decides:
  1. ``kv_cache``      -- a running request was preempted in this ``schedule()`` (allocate_slots
                          failed, :776-848); vLLM then admits no waiting request (:900).
  2. ``token_budget``  -- the budget is used up (both loops stop at ``token_budget == 0``).
  3. ``paused``        -- the scheduler is paused (``_pause_state``, :615, :900, :916).
  4. ``nothing_waiting`` / ``waiting_blocked`` -- no waiting request could be admitted: the queue
                          is empty, or everything in it is deferred (``deferred_waiting``: waiting
                          for remote KV, grammar compilation, a LoRA slot, stale output).
  5. ``seq_cap``       -- ``len(running) (+ paused streaming sessions) >= max_num_active_reqs``
                          (:921-924).
  6. ``token_budget``  -- chunked prefill is off and the next waiting request does not fit (:1160-1167).
  7. ``kv_cache``      -- otherwise the waiting loop stopped at the allocation of the next
                          request's KV blocks (:1256-1282). On the plain text path that is the only
                          break left; with encoder inputs, Mamba block alignment, MTP prefill
                          lookahead, speculative padding or DP prefill throttling their budgets can
                          stop it too and are reported here.
Queue lengths are after the step: ``waiting_reqs`` = ``get_request_counts()[1]``
(``len(waiting) + len(kv_holding_waiting)``, :2608-2610), ``waiting_deferred`` =
``len(deferred_waiting)``. Preemptions inside the step: ``SchedulerOutput.preempted_req_ids`` is
``self.reset_preempted_req_ids`` (:1509), which holds the requests preempted since the previous
step (by ``reset_prefix_cache``, :2860) plus those preempted in this one (:836); the before hook
counts the first kind.
"""

from __future__ import annotations

from profilemate.probes import steps
from profilemate.probes.spec import ENGINECORE, Column, Hooks, Table, Target

KINDS = ("empty", "prefill", "decode", "mixed")
LIMITS = (
    "kv_cache",
    "token_budget",
    "paused",
    "nothing_waiting",
    "waiting_blocked",
    "seq_cap",
)

BATCH = Table(
    "batch_utilization",
    (
        Column("timestamp_sec", "ts_sec", "s", "schedule() start, seconds since the session start"),
        Column("step_id", "step", "", "engine step (vLLM's Scheduler.current_step)"),
        Column("running_reqs", "a0", "requests", "requests in the running queue after the step"),
        Column("max_num_seqs", "a1", "requests", "the running-queue cap (max_num_running_reqs)"),
        Column("scheduled_reqs", "a2", "requests", "requests given tokens in this step"),
        Column("scheduled_tokens", "a3", "tokens", "tokens scheduled in this step"),
        Column(
            "token_budget", "a4", "tokens", "the step's token budget (max_num_scheduled_tokens)"
        ),
        Column("prefill_reqs", "a5", "requests", "scheduled requests computing known tokens"),
        Column("prefill_tokens", "a6", "tokens", "tokens of the prefill requests"),
        Column("decode_reqs", "a7", "requests", "scheduled requests decoding their last token"),
        Column("decode_tokens", "a8", "tokens", "tokens of the decode requests (1 + drafts each)"),
        Column("batch_kind", "s9", "", "empty, prefill, decode or mixed"),
        Column("waiting_reqs", "a10", "requests", "requests in the waiting queues after the step"),
        Column("waiting_deferred", "a11", "requests", "waiting requests deferred (blocked)"),
        Column("preempted_reqs", "a12", "requests", "running requests preempted in this step"),
        Column("limit", "s13", "", "why the batch was not fuller (docs/OUTPUTS.md)"),
        Column("admitted_reqs", "a14", "requests", "requests admitted from the waiting queue"),
    ),
    doc="one row per Scheduler.schedule() call",
)
TABLES = (BATCH,)


def batch_hooks(ctx) -> Hooks:
    kind_id = {k: ctx.intern(k) for k in KINDS}
    lim_id = {k: ctx.intern(k) for k in LIMITS}
    empty, prefill_kind, decode_kind, mixed = (kind_id[k] for k in KINDS)
    kv, tok, paused, nothing, blocked, seqcap = (lim_id[k] for k in LIMITS)
    preempted_before = 0  # requests preempted between the previous step and this one

    def before(self):
        nonlocal preempted_before
        preempted_before = len(getattr(self, "reset_preempted_req_ids", ()))
        return steps.schedule_before(self)

    def after(result, self):
        steps.schedule_after(result, self)
        so = result
        nst = so.num_scheduled_tokens
        total = so.total_num_scheduled_tokens
        new = so.scheduled_new_reqs
        cached = so.scheduled_cached_reqs
        cids = cached.req_ids
        resumed = cached.resumed_req_ids
        n_new = len(new)
        new_tok = 0
        for nr in new:
            new_tok += nst[nr.req_id]
        n_cached = len(cids)
        decode_reqs = decode_tok = 0
        if n_cached:
            outs = cached.num_output_tokens
            spec = so.scheduled_spec_decode_tokens
            if not spec and 0 not in outs:
                if total - new_tok == n_cached:  # every running request got one token: decodes
                    decode_reqs = decode_tok = n_cached
                else:
                    decode_reqs = decode_tok = list(map(nst.__getitem__, cids)).count(1)
            else:
                for rid, o in zip(cids, outs, strict=False):
                    n = nst[rid]
                    if o and n == 1 + len(spec.get(rid, ())):
                        decode_reqs += 1
                        decode_tok += n
            for rid in resumed:  # V1: a resumed request is a prefill, as it is with V2
                n = nst[rid]
                if n == 1 + len(spec.get(rid, ())) and self.requests[rid].num_output_tokens:
                    decode_reqs -= 1
                    decode_tok -= n
        prefill_reqs = n_new + n_cached - decode_reqs
        if total == 0:
            kind = empty
        elif decode_reqs == 0:
            kind = prefill_kind
        elif prefill_reqs == 0:
            kind = decode_kind
        else:
            kind = mixed

        running = len(self.running)
        waiting = self.get_request_counts()[1]
        deferred = len(getattr(self, "deferred_waiting", ()))
        budget = self.max_num_scheduled_tokens
        preempted = len(so.preempted_req_ids) - preempted_before
        if preempted > 0:
            limit = kv
        elif total >= budget:
            limit = tok
        elif getattr(self, "_pause_state", 0):
            limit = paused
        elif waiting - deferred <= 0:
            limit = blocked if waiting else nothing
        elif running + getattr(self, "num_waiting_for_streaming_input", 0) >= getattr(
            self, "max_num_active_reqs", self.max_num_running_reqs
        ):
            limit = seqcap
        elif not self.scheduler_config.enable_chunked_prefill and _next_needs(self) > (
            budget - total
        ):
            limit = tok
        else:
            limit = kv
        return (
            running,
            self.max_num_running_reqs,
            len(nst),
            total,
            budget,
            prefill_reqs,
            total - decode_tok,
            decode_reqs,
            decode_tok,
            kind,
            waiting,
            deferred,
            max(preempted, 0),
            limit,
            n_new + len(resumed),
        )

    return Hooks(before, after)


def _next_needs(sched) -> int:
    """Tokens the first waiting request that is not deferred still needs (the one the waiting loop
    stopped at); only asked when chunked prefill is off."""
    deferred = getattr(sched, "deferred_waiting", ())
    for queue in (getattr(sched, "kv_holding_waiting", ()), sched.waiting):
        for req in queue:
            if req not in deferred:
                return req.num_tokens - req.num_computed_tokens
    return 0


TARGETS = (
    # EngineCore: AsyncScheduler inherits schedule (vLLM 0.32.0); v1/core/scheduler.py is the older
    # location of the V1 scheduler.
    Target(
        "vllm.v1.core.sched.scheduler:Scheduler.schedule", "schedule", BATCH,
        hooks=batch_hooks, sets_step=True, roles=ENGINECORE,
        alternatives=("vllm.v1.core.scheduler:Scheduler.schedule",),
        note="batch size, token budget use, prefill/decode split, why not fuller",
    ),
)  # fmt: skip
