"""CPU operations: one span per call of vLLM's per-request and per-step host work.

Writes ``cpu_operations_timing.csv`` (timestamp_sec, step_id, operation, duration_ms, context,
num_tokens).

Step ids: ``Scheduler.schedule`` runs once per engine step in the EngineCore (``EngineCore.step``
calls it, then ``execute_model``; checked in vLLM 0.32.0). Its probe advances the process's step id
(``_core.set_step``) and stamps the number on the returned ``SchedulerOutput`` as
``_profilemate_step``. In vLLM 0.32.0 the multiprocessing executor sends that object to the workers
with plain ``pickle`` (``shm_broadcast.MessageQueue.enqueue``) and ``SchedulerOutput`` is a dataclass
without ``__slots__``, so the attribute arrives in the worker, whose ``execute_model`` probe makes it
the worker's current step: the same number in EngineCore and worker rows. If a future vLLM drops the
attribute in transit, the worker falls back to counting its own ``execute_model`` calls (equal to
the engine's count while every step reaches every worker) and says so once in the debug log.
"""

from __future__ import annotations

import itertools
import logging

from profilemate.probes.guard import ArgReader
from profilemate.probes.registry import ProbeContext, Target

log = logging.getLogger("profilemate")

STEP_ATTR = "_profilemate_step"


def _schedule_probe(ctx: ProbeContext):
    rec = ctx.recorder
    table, name, cx = ctx.table_id, ctx.name_id, ctx.ctx_id
    steps = itertools.count(1)

    def before(args, kwargs):
        step = next(steps)
        rec.set_step(step)
        return step, rec.now_ns()

    def after(state, result, exc):
        step, t0 = state
        t1 = rec.now_ns()
        tokens = 0
        if result is not None:
            # object.__setattr__: works on frozen dataclasses too, should SchedulerOutput become one.
            object.__setattr__(result, STEP_ATTR, step)
            tokens = getattr(result, "total_num_scheduled_tokens", 0) or 0
        rec.span(table, name, t0, t1 - t0, step, cx, tokens)

    return before, after


def _execute_model_probe(ctx: ProbeContext):
    rec = ctx.recorder
    table, name, cx = ctx.table_id, ctx.name_id, ctx.ctx_id
    reader = ArgReader(ctx.original, "scheduler_output")
    own = itertools.count(1)
    warned = []

    def before(args, kwargs):
        so = reader.get(args, kwargs)
        step = getattr(so, STEP_ATTR, None)
        if step is None:
            step = next(own)
            if not warned:
                warned.append(True)
                log.debug("SchedulerOutput carries no step id; the worker counts its own steps")
        rec.set_step(step)
        return step, getattr(so, "total_num_scheduled_tokens", 0) or 0, rec.now_ns()

    def after(state, result, exc):
        step, tokens, t0 = state
        rec.span(table, name, t0, rec.now_ns() - t0, step, cx, tokens)

    return before, after


TARGETS = (
    # API process (or the user's own process with the offline LLM class).
    Target(
        module="vllm.v1.engine.input_processor",
        qualname="InputProcessor.process_inputs",
        category="cpu_ops",
        operation="process_inputs",
        wrap="timed",
        roles=("api",),
        group="cpu_ops.process_inputs",
        note="request validation + tokenization glue, once per request",
    ),
    Target(
        # Before InputProcessor existed, the same work lived in v1/engine/processor.py: Processor.
        module="vllm.v1.engine.processor",
        qualname="Processor.process_inputs",
        category="cpu_ops",
        operation="process_inputs",
        wrap="timed",
        roles=("api",),
        group="cpu_ops.process_inputs",
        note="older vLLM name of InputProcessor.process_inputs",
    ),
    # EngineCore: one span per engine step; advances the step id.
    Target(
        module="vllm.v1.core.sched.scheduler",
        qualname="Scheduler.schedule",
        category="cpu_ops",
        operation="schedule",
        wrap="python",
        probe=_schedule_probe,
        roles=("enginecore",),
        group="cpu_ops.schedule",
        note="AsyncScheduler subclasses Scheduler without overriding schedule (vLLM 0.32.0)",
    ),
    Target(
        module="vllm.v1.core.scheduler",  # older location of the V1 scheduler
        qualname="Scheduler.schedule",
        category="cpu_ops",
        operation="schedule",
        wrap="python",
        probe=_schedule_probe,
        roles=("enginecore",),
        group="cpu_ops.schedule",
    ),
    # Worker: CPUWorker (vllm.v1.worker.cpu_worker) and the GPU/XPU workers subclass gpu_worker.Worker
    # and inherit its execute_model, which covers both the V1 and the V2 model runner (vLLM 0.32.0).
    Target(
        module="vllm.v1.worker.gpu_worker",
        qualname="Worker.execute_model",
        category="cpu_ops",
        operation="execute_model",
        wrap="python",
        probe=_execute_model_probe,
        params=("scheduler_output",),
        roles=("worker",),
        note="host wall time of one step on the worker (on GPU: launch time, not device time)",
    ),
)
