"""Forward pass timing: one row per model forward, host time and device time, serving or not.

Writes ``forward_pass_timing.csv`` in the worker. Checked in vLLM 0.32.0:

- **V1 runner** (the CPU build's, ``v1/worker/gpu_model_runner.py``): ``GPUModelRunner._model_forward``
  is called only from ``execute_model`` on steps that scheduled tokens (a 0-token step returns
  ``EMPTY_MODEL_RUNNER_OUTPUT`` before it); ``_dummy_run`` (profile run, warm-up, graph capture, DP
  padding batches) calls ``self.model`` directly, so it is bracketed separately and its rows are
  marked ``profile`` / ``capture`` / ``dummy`` with no step id. ``execute_model``'s before hook
  reads the step (the stamp on ``SchedulerOutput``, probes/steps.py), the request count, the
  token count and the phase off the ``SchedulerOutput``; ``_model_forward``'s row carries them.
- **V2 runner** (the GPU default, ``v1/worker/gpu/model_runner.py``) has no ``_model_forward``:
  its ``execute_model(..., dummy_run=False, is_profile=False)`` is bracketed whole (input
  preparation included) and ``dummy_run`` / ``is_profile`` mark the non-serving runs.

Phase: a request is in its context (prefill) phase when it is new in the step or has produced no
output token yet (``CachedRequestData.num_output_tokens == 0``) -- vLLM's own definition in
``v1/utils.py: compute_iteration_details``, computed here without a per-request Python loop.

Device time: the bracket records a pre-created device event before and after the forward on the
current stream (C++ pool, ``profilemate/gpu_timer.hpp``, driver loaded at run time); the collector
thread writes the row once the device is past the end event (a query, never a synchronize). Without
a GPU the row is written at once and ``gpu_time_ms`` is empty.
"""

from __future__ import annotations

import logging

from profilemate.probes import steps
from profilemate.probes.spec import WORKER, Column, Hooks, Table, Target

log = logging.getLogger("profilemate")

FORWARD = Table(
    "forward_pass_timing",
    (
        Column("timestamp_sec", "ts_sec", "s", "forward start (host clock), seconds since the session start"),
        Column("step_id", "step", "", "engine step (empty for runs outside a step: profile, capture, dummy)"),
        Column("run", "s0", "", "serve (an engine step), profile, capture or dummy (warm-up, DP padding)"),
        Column("phase", "s1", "", "prefill, decode or mixed (vLLM's context/generation split); empty for non-serving runs"),
        Column("num_reqs", "a2", "requests", "requests in the step"),
        Column("num_tokens", "a3", "tokens", "tokens scheduled in the step (unpadded); for non-serving runs the dummy batch's tokens"),
        Column("forward_time_ms", "dur_ms", "ms", "host wall time of the forward call (V2: of execute_model)"),
        Column("gpu_time_ms", "a4", "ms", "device time between events recorded on the current stream around the forward; empty without a GPU"),
        Column("throughput_tokens_per_sec", "a5", "tokens/s", "num_tokens / forward_time_ms"),
    ),
    doc="one row per model forward",
)  # fmt: skip
TABLES = (FORWARD,)

GPU_SLOT = 4  # values[4] = a4 = gpu_time_ms
NAN = float("nan")


def _list_count_zero(values) -> int:
    return values.count(0)


def count_zero_of(core):
    """The core's ``count_zero`` (a C loop without a Python call per item), or a Python one."""
    return getattr(core, "count_zero", None) or _list_count_zero


def context_count(scheduler_output, count_zero=_list_count_zero) -> int:
    """Requests of the step in their context (prefill) phase: new in the step, or cached with no
    output token yet (``CachedRequestData.num_output_tokens == 0``)."""
    outputs = scheduler_output.scheduled_cached_reqs.num_output_tokens
    context = len(scheduler_output.scheduled_new_reqs)
    return context + count_zero(outputs) if outputs else context


def phase_name(context: int, num_reqs: int) -> str:
    if context == 0:
        return "decode"
    return "prefill" if context >= num_reqs else "mixed"


def phase_of(scheduler_output, count_zero=_list_count_zero) -> tuple[str, int, int]:
    """(phase, requests, tokens) of a SchedulerOutput, as vLLM's compute_iteration_details splits it."""
    num_reqs = len(scheduler_output.num_scheduled_tokens)
    phase = phase_name(context_count(scheduler_output, count_zero), num_reqs)
    return phase, num_reqs, scheduler_output.total_num_scheduled_tokens


class _Bracket:
    """Times one call from the hooks (host clock, and device events when a GPU timer is on)."""

    def __init__(self, ctx) -> None:
        core = ctx.recorder._core
        self.now = core.now_ns
        self.end_row = core.gpu_timer_end
        self.begin_gpu = core.gpu_timer_begin
        self.table = ctx.table_id(FORWARD)
        self.name = ctx.intern(ctx.target.operation)
        self.ids = {
            s: ctx.intern(s)
            for s in ("serve", "profile", "capture", "dummy", "prefill", "decode", "mixed")
        }
        self.stream = _stream_reader(core)
        self.t0 = 0
        self.pair = -1

    def begin(self) -> None:
        self.pair = self.begin_gpu(self.stream()) if self.stream is not None else -1
        self.t0 = self.now()

    def end(self, step: int, run: str, phase: str | None, reqs: int, tokens: int) -> None:
        t1 = self.now()
        dur = t1 - self.t0
        values = (
            float(self.ids[run]),
            float(self.ids[phase]) if phase else 0.0,
            float(reqs),
            float(tokens),
            0.0,  # GPU_SLOT: filled by the timer, NaN without a device time
            tokens * 1e9 / dur if dur > 0 else float("nan"),
        )
        stream = self.stream() if (self.pair >= 0 and self.stream is not None) else 0
        self.end_row(
            self.pair, stream, self.table, self.name, step, 0, self.t0, dur, values, GPU_SLOT
        )
        self.pair = -1


def _stream_reader(core):
    """A cheap reader of the current raw device stream, or None (no GPU, timer disabled)."""
    import sys

    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
    except Exception:
        return None
    why = core.gpu_timer_open()
    if why:
        log.info("forward_timing: no device time (%s)", why)
        return None
    raw = torch._C._cuda_getCurrentRawStream  # the stream vLLM's kernels go to (no object made)
    device = torch.cuda.current_device()
    return lambda: raw(device)


# The worker's step being executed: (step, requests in their context phase, requests, tokens),
# set by execute_model's hook; the phase is named by the forward's hook (phase_name).
_pending = [(-1, 0, 0, 0)]


def execute_model_hooks(ctx) -> Hooks:
    count_zero = count_zero_of(ctx.recorder._core)
    step_attr = steps.STEP_ATTR

    def before(scheduler_output):
        so = scheduler_output
        outputs = so.scheduled_cached_reqs.num_output_tokens
        context = len(so.scheduled_new_reqs)
        if outputs:
            context += count_zero(outputs)
        _pending[0] = (
            getattr(so, step_attr, -1),  # steps.of(), inlined
            context,
            len(so.num_scheduled_tokens),
            so.total_num_scheduled_tokens,
        )

    return Hooks(before=before)


def model_forward_hooks(ctx) -> Hooks:
    core = ctx.recorder._core
    stream = _stream_reader(core)
    if stream is not None:  # device events: the bracket and the GPU timer
        b = _Bracket(ctx)

        def before(self):
            b.begin()

        def after(result, self):
            step, context, reqs, tokens = _pending[0]
            b.end(step, "serve", phase_name(context, reqs), reqs, tokens)

        return Hooks(before, after)

    # No device time (the CPU build): the row is written at once, with one C++ call and no
    # Python call in between -- the same row gpu_timer_end(-1, ...) writes, gpu_time_ms NaN.
    now = core.now_ns
    record = core.record_row
    table = ctx.table_id(FORWARD)
    name = ctx.intern(ctx.target.operation)
    serve = float(ctx.intern("serve"))
    decode, prefill, mixed = (float(ctx.intern(p)) for p in ("decode", "prefill", "mixed"))
    t0 = [0]

    def before(self):
        t0[0] = now()

    def after(result, self):
        t1 = now()
        start = t0[0]
        dur = t1 - start
        step, context, reqs, tokens = _pending[0]
        phase = decode if not context else (prefill if context >= reqs else mixed)
        rate = tokens * 1e9 / dur if dur > 0 else NAN
        record(table, name, start, dur, step, 0,
               (serve, phase, float(reqs), float(tokens), None, rate), None)  # fmt: skip

    return Hooks(before, after)


def _run_kind(is_profile, is_graph_capturing) -> str:
    return "profile" if is_profile else ("capture" if is_graph_capturing else "dummy")


def dummy_run_hooks(ctx) -> Hooks:
    b = _Bracket(ctx)

    def before(self, num_tokens, is_profile, is_graph_capturing):
        b.begin()

    def after(result, self, num_tokens, is_profile, is_graph_capturing):
        b.end(-1, _run_kind(is_profile, is_graph_capturing), None, 0, int(num_tokens))

    return Hooks(before, after)


def v2_execute_model_hooks(ctx) -> Hooks:
    b = _Bracket(ctx)
    count_zero = count_zero_of(ctx.recorder._core)

    def before(self, scheduler_output, dummy_run, is_profile):
        b.begin()

    def after(result, self, scheduler_output, dummy_run, is_profile):
        if dummy_run or is_profile:
            b.end(
                -1,
                "profile" if is_profile else "dummy",
                None,
                0,
                scheduler_output.total_num_scheduled_tokens,
            )
            return
        phase, reqs, tokens = phase_of(scheduler_output, count_zero)
        if tokens:
            b.end(steps.of(scheduler_output), "serve", phase, reqs, tokens)

    return Hooks(before, after)


V1 = "vllm.v1.worker.gpu_model_runner:GPUModelRunner."
V2 = "vllm.v1.worker.gpu.model_runner:GPUModelRunner."

TARGETS = (
    # V1: the step's facts (no row of its own).
    Target(V1 + "execute_model", "execute_model", None, hooks=execute_model_hooks, roles=WORKER,
           note="reads the step, requests, tokens and phase for the forward row"),
    Target(V1 + "_model_forward", "forward", None, hooks=model_forward_hooks, roles=WORKER,
           note="one row per serving forward (called only on steps with tokens)"),
    Target(V1 + "_dummy_run", "dummy_run", None, hooks=dummy_run_hooks, roles=WORKER,
           note="profile / capture / warm-up forwards, marked, no step id"),
    # V2 (GPU default): no _model_forward; execute_model also serves dummy and profile runs.
    Target(V2 + "execute_model", "execute_model", None, hooks=v2_execute_model_hooks, roles=WORKER,
           note="V2 runner: execute_model bracketed whole (input preparation included)"),
)  # fmt: skip
