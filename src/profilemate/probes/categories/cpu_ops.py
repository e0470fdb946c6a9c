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

Further operations (checked in vLLM 0.32.0):
  * EngineCore ``Scheduler.update_from_output(scheduler_output, model_runner_output)``
    (v1/core/sched/scheduler.py:2026): its step is ``steps.of(scheduler_output)`` (with async
    scheduling it runs after the next ``schedule()``); ``engine_timestamp`` is the ``timestamp`` of
    the ``EngineCoreOutputs`` it returns (set in ``__post_init__``, v1/engine/__init__.py:288), which
    the API's ``OutputProcessor.process_outputs`` receives as ``engine_core_timestamp``: equal values
    join an API row to its engine step.
  * API rendering/tokenization, ``vllm.renderers.base.BaseRenderer``: ``render_cmpl`` (:1235) and
    ``render_chat`` (:1287) (offline ``LLM``: entrypoints/common/offline.py), each calling
    ``tokenize_prompts`` (:788); the server's coroutines ``render_cmpl_async`` (:1260),
    ``render_chat_async`` (:1327), ``tokenize_prompts_async`` (:805) and
    ``vllm.renderers.online_renderer.OnlineRenderer.render_chat`` (:224) / ``render_completion``
    (:588), which wrap the whole request's preprocessing. Coroutines are timed by an ``async``
    wrapper from the call to the end of the await (probes/async_timed.py), suspensions included.
  * API output processing + detokenization: ``OutputProcessor.process_outputs`` (v1/engine/
    output_processor.py:681). Under ``AsyncLLM`` it runs once per chunk of
    ``VLLM_V1_OUTPUT_PROC_CHUNK_SIZE`` outputs (async_llm.py:843-868): several rows per engine step,
    with the same ``engine_timestamp``.
  * Worker, V1 runner (``vllm.v1.worker.gpu_model_runner.GPUModelRunner``, the CPU default):
    ``_update_states`` (:1172), ``_prepare_inputs`` (:1920), ``_preprocess`` (:3292), all called from
    ``execute_model`` (:3940), and ``vllm.v1.sample.sampler.Sampler.forward`` (:73, called from
    ``sample_tokens`` -> ``_sample``); V2 runner (``vllm.v1.worker.gpu.model_runner``):
    ``update_requests`` (:1236), ``prepare_inputs`` (:1354), ``vllm.v1.worker.gpu.sample.sampler.
    Sampler.__call__`` (:134). Their step is the worker's current step, which the
    ``execute_model`` probe sets (``sample_tokens`` is the next RPC of the same step).
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
        # The API-EngineCore join (EngineCoreOutputs carries no step id): the EngineCore's
        # update_from_output and the API's process_outputs both record EngineCoreOutputs.timestamp.
        Column(
            "engine_timestamp",
            "a1",
            "s",
            "EngineCoreOutputs.timestamp (update_from_output, process_outputs); 0 elsewhere",
        ),
        Column(
            "num_requests",
            "a2",
            "requests",
            "requests (or prompts) the call handled; 0 where not counted",
        ),
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


def update_from_output_hooks(ctx) -> Hooks:
    current_step = ctx.recorder.current_step if ctx.recorder is not None else None

    def before(scheduler_output):
        step = steps.of(scheduler_output, None)
        if step is None:
            step = current_step()
        return step, scheduler_output.total_num_scheduled_tokens

    def after(result, scheduler_output):
        ts = 0.0
        if result:
            for eco in result.values():  # one EngineCoreOutputs per API client (usually one)
                ts = eco.timestamp
                break
        return ts, len(scheduler_output.num_scheduled_tokens)

    return Hooks(before, after)


def process_outputs_hooks(ctx) -> Hooks:
    def before(engine_core_outputs, engine_core_timestamp):
        ts = 0.0 if engine_core_timestamp is None else engine_core_timestamp
        return 0, ts, len(engine_core_outputs)

    return Hooks(before)


def prompts_hooks(ctx) -> Hooks:
    def before(prompts):
        return 0, 0, len(prompts)

    return Hooks(before)


def conversations_hooks(ctx) -> Hooks:
    def before(conversations):
        return 0, 0, len(conversations)

    return Hooks(before)


def worker_step_hooks(ctx) -> Hooks:
    def before(scheduler_output):
        return (
            scheduler_output.total_num_scheduled_tokens,
            0,
            len(scheduler_output.num_scheduled_tokens),
        )

    return Hooks(before)


def sampler_hooks(ctx) -> Hooks:
    def before(logits):
        return 0 if logits is None else logits.shape[0]  # one row of logits per sampled position

    return Hooks(before)


_RENDER = "vllm.renderers.base:BaseRenderer."
_RUNNER = "vllm.v1.worker.gpu_model_runner:GPUModelRunner."
_RUNNER2 = "vllm.v1.worker.gpu.model_runner:GPUModelRunner."

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
    # EngineCore: after the model ran, the scheduler turns its output into EngineCoreOutputs.
    Target(
        "vllm.v1.core.sched.scheduler:Scheduler.update_from_output", "update_from_output",
        CPU_OPERATIONS, hooks=update_from_output_hooks, sets_step=True, roles=ENGINECORE,
        alternatives=("vllm.v1.core.scheduler:Scheduler.update_from_output",),
        note="step from the SchedulerOutput; engine_timestamp joins the API's process_outputs rows",
    ),
    # API: output processing and detokenization, per batch of engine outputs.
    Target(
        "vllm.v1.engine.output_processor:OutputProcessor.process_outputs", "process_outputs",
        CPU_OPERATIONS, hooks=process_outputs_hooks, roles=API,
        note="AsyncLLM calls it once per chunk of outputs: several rows per engine step",
    ),
    # API: rendering + tokenization on the vllm.renderers path (0.32). render_* call
    # tokenize_prompts inside, so a render row contains the tokenize row of the same prompts.
    Target(_RENDER + "render_cmpl", "render", CPU_OPERATIONS, hooks=prompts_hooks, roles=API),
    Target(_RENDER + "render_chat", "render", CPU_OPERATIONS, hooks=conversations_hooks, roles=API),
    Target(_RENDER + "tokenize_prompts", "tokenize", CPU_OPERATIONS, hooks=prompts_hooks, roles=API),
    # The server's coroutines: timed from the call to the end of the await (async wrapper).
    Target(_RENDER + "render_cmpl_async", "render", CPU_OPERATIONS, roles=API),
    Target(_RENDER + "render_chat_async", "render", CPU_OPERATIONS, roles=API),
    Target(_RENDER + "tokenize_prompts_async", "tokenize", CPU_OPERATIONS, roles=API),
    Target("vllm.renderers.online_renderer:OnlineRenderer.render_chat", "render_request",
           CPU_OPERATIONS, roles=API, note="a chat request's whole preprocessing (coroutine)"),
    Target("vllm.renderers.online_renderer:OnlineRenderer.render_completion", "render_request",
           CPU_OPERATIONS, roles=API, note="a completion request's whole preprocessing (coroutine)"),
    # Worker, V1 runner (the CPU build's default): input preparation inside execute_model.
    Target(_RUNNER + "_update_states", "update_states", CPU_OPERATIONS, hooks=worker_step_hooks,
           roles=WORKER, note="persistent batch update from the SchedulerOutput"),
    Target(_RUNNER + "_prepare_inputs", "prepare_inputs", CPU_OPERATIONS, hooks=worker_step_hooks,
           roles=WORKER),
    Target(_RUNNER + "_preprocess", "preprocess", CPU_OPERATIONS, hooks=worker_step_hooks,
           roles=WORKER, note="input ids / embeddings for the forward"),
    # Worker, V2 runner (the GPU default in 0.32).
    Target(_RUNNER2 + "update_requests", "update_states", CPU_OPERATIONS,
           hooks=worker_step_hooks, roles=WORKER),
    Target(_RUNNER2 + "prepare_inputs", "prepare_inputs", CPU_OPERATIONS,
           hooks=worker_step_hooks, roles=WORKER),
    # Sampling: V1 Sampler.forward (via nn.Module.__call__), V2 Sampler.__call__.
    Target("vllm.v1.sample.sampler:Sampler.forward", "sample", CPU_OPERATIONS,
           hooks=sampler_hooks, roles=WORKER,
           note="on GPU: launch time, not device time; also runs once at warm-up (no step)"),
    Target("vllm.v1.worker.gpu.sample.sampler:Sampler.__call__", "sample", CPU_OPERATIONS,
           hooks=sampler_hooks, roles=WORKER),
)  # fmt: skip
