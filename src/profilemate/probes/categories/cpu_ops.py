"""CPU operations: one span per call of vLLM's per-request and per-step host work.

Writes ``cpu_operations_timing.csv``. Step ids (probes/steps.py): ``Scheduler.schedule`` runs once per engine step in
the EngineCore (``EngineCore.step`` calls it, then ``execute_model``; checked in vLLM 0.32.0). Its
before hook numbers the step (the C++ wrapper makes it the process's current step before vLLM's
``schedule`` runs, so everything recorded inside carries it); its after hook stamps the number on
the returned ``SchedulerOutput`` as ``_profilemate_step``. In vLLM 0.32.0 the multiprocessing
executor sends that object to the workers with plain ``pickle`` (``shm_broadcast.MessageQueue``) and
``SchedulerOutput`` is a dataclass without ``__slots__``, so the attribute arrives in the worker,
whose ``execute_model`` hook makes it the worker's step: the same number in EngineCore and worker
rows. The numbering equals vLLM's own ``Scheduler.current_step`` (incremented on the first line of
every ``schedule()``). Should a future vLLM drop the attribute in transit, the worker counts its own
``execute_model`` calls (equal while every step reaches every worker) and says so once (debug log).
"""

from __future__ import annotations

import logging

from profilemate.probes import steps
from profilemate.probes.spec import API, ENGINECORE, WORKER, Column, Hooks, Table, Target

log = logging.getLogger("profilemate")

STEP_ATTR = steps.STEP_ATTR

CPU_OPERATIONS = Table(
    "cpu_operations_timing",
    (
        Column("timestamp_sec", "ts_sec", "s", "span start, seconds since the session start"),
        Column("step_id", "step", "", "engine step (empty for per-request operations)"),
        Column("operation", "name", "", "what ran: schedule, execute_model, process_inputs"),
        Column("duration_ms", "dur_ms", "ms", "host wall time of the call"),
        Column("context", "ctx", "", "the wrapped function's qualified name"),
        # Lets a reader tell an empty step (vLLM runs one to retire finished requests) from a real
        # one, and check totals against vLLM's own counters. 0 for per-request operations.
        Column("num_tokens", "a0", "tokens", "tokens scheduled in the step (per-step operations)"),
    ),
    doc="one row per call of a timed host operation",
)
TABLES = (CPU_OPERATIONS,)


def schedule_hooks(ctx) -> Hooks:
    # The step id is vLLM's own counter (probes/steps.py): every category that wraps schedule()
    # computes the same number, whichever of them is on.
    def before(self):
        return steps.schedule_before(self)

    def after(result, self):
        steps.schedule_after(result, self)
        return 0 if result is None else result.total_num_scheduled_tokens

    return Hooks(before, after)


def execute_model_hooks(ctx) -> Hooks:
    own = 0

    def before(scheduler_output):
        nonlocal own
        step = steps.of(scheduler_output, None)
        if step is None:
            if own == 0:
                log.debug("SchedulerOutput carries no step id; the worker counts its own steps")
            own += 1
            step = own
        return step, scheduler_output.total_num_scheduled_tokens

    return Hooks(before)


TARGETS = (
    # API process (or the user's own process with the offline LLM class); once per request.
    # Before InputProcessor existed the same work was v1/engine/processor.py: Processor.
    Target(
        "vllm.v1.engine.input_processor:InputProcessor.process_inputs", "process_inputs",
        CPU_OPERATIONS, roles=API, alternatives=("vllm.v1.engine.processor:Processor.process_inputs",),
        note="request validation + tokenization glue",
    ),
    # EngineCore: one span per engine step; numbers the step. AsyncScheduler inherits schedule
    # (vLLM 0.32.0); v1/core/scheduler.py is the older location of the V1 scheduler.
    Target(
        "vllm.v1.core.sched.scheduler:Scheduler.schedule", "schedule", CPU_OPERATIONS,
        hooks=schedule_hooks, sets_step=True, roles=ENGINECORE,
        alternatives=("vllm.v1.core.scheduler:Scheduler.schedule",),
    ),
    # Worker: CPUWorker and the GPU/XPU workers subclass gpu_worker.Worker and inherit its
    # execute_model, which serves both the V1 and the V2 model runner (vLLM 0.32.0).
    Target(
        "vllm.v1.worker.gpu_worker:Worker.execute_model", "execute_model", CPU_OPERATIONS,
        hooks=execute_model_hooks, sets_step=True, roles=WORKER,
        note="host wall time of one step on the worker (on GPU: launch time, not device time)",
    ),
)  # fmt: skip
