"""Encoder timing: one row per encoder run (multimodal encoders and encoder-decoder encoders).

Writes ``encoder_decoder_timing.csv`` in the worker. Checked in vLLM 0.32.0:

- **V1** (``v1/worker/gpu_model_runner.py``): ``GPUModelRunner._execute_mm_encoder(self,
  scheduler_output)`` runs every scheduled encoder input of the step (called from ``_preprocess``;
  for ``is_encoder_decoder`` models such as Whisper its result becomes ``encoder_outputs``). It
  returns ``[]`` at once when nothing is scheduled: such calls write no row. Items and tokens come
  from ``scheduler_output.scheduled_encoder_inputs`` and the worker's request state
  (``mm_features[i].mm_position.get_num_embeds()``, what vLLM's scheduler counts as encoder
  output tokens).
- **V2** (``v1/worker/gpu/mm/encoder_runner.py``): ``EncoderRunner.execute_mm_encoder(self,
  mm_kwargs)``; items = ``len(mm_kwargs)``.
- **Encoder CUDA graphs** (``v1/worker/encoder_cudagraph.py``): ``EncoderCudaGraphManager.execute``
  when vLLM replays an encoder graph: a row of its own, component ``encoder_graph``.

vLLM's own encoder timing (``enable_mm_processor_stats``) synchronizes the device; it is not used.
Device time comes from the same event pool as forward_timing (empty without a GPU).
"""

from __future__ import annotations

from profilemate.probes import steps
from profilemate.probes.spec import WORKER, Column, Hooks, Table, Target

ENCODER = Table(
    "encoder_decoder_timing",
    (
        Column("timestamp_sec", "ts_sec", "s", "encoder run start, seconds since the session start"),
        Column("step_id", "step", "", "engine step the encoder ran in"),
        Column("component", "s0", "", "encoder (V1/V2 encoder run) or encoder_graph (an encoder CUDA graph replay)"),
        Column("num_items", "a1", "items", "multimodal items (or encoder inputs) encoded"),
        Column("num_tokens", "a2", "tokens", "encoder output tokens (embeddings) of those items; empty where vLLM does not say"),
        Column("duration_ms", "dur_ms", "ms", "host wall time of the encoder call"),
        Column("gpu_time_ms", "a3", "ms", "device time between events around the call; empty without a GPU"),
        Column("context", "ctx", "", "the wrapped function"),
    ),
    doc="one row per encoder run",
)  # fmt: skip
TABLES = (ENCODER,)
GPU_SLOT = 3
NAN = float("nan")


def encoder_inputs_of(runner, scheduler_output) -> tuple[int, float]:
    """(items, tokens) of the step's scheduled encoder inputs, read off the worker's request state."""
    items = 0
    tokens = 0
    requests = getattr(runner, "requests", {})
    for req_id, ids in scheduler_output.scheduled_encoder_inputs.items():
        items += len(ids)
        state = requests.get(req_id)
        feats = getattr(state, "mm_features", None)
        if feats is None:
            return items, NAN
        for i in ids:
            tokens += feats[i].mm_position.get_num_embeds()
    return items, float(tokens)


class _Timer:
    def __init__(self, ctx, component: str, gpu: bool = True) -> None:
        from profilemate.probes.categories.forward_timing import _stream_reader

        core = ctx.recorder._core
        self.now = core.now_ns
        self.begin_gpu = core.gpu_timer_begin
        self.end_row = core.gpu_timer_end
        self.table = ctx.table_id(ENCODER)
        self.name = ctx.intern(ctx.target.operation)
        self.ctx_id = ctx.intern(ctx.target.site.qualname)
        self.component = float(ctx.intern(component))
        # The pool brackets one call at a time: an encoder graph runs inside the V2 encoder call.
        self.stream = _stream_reader(core) if gpu else None
        self.current_step = ctx.recorder.current_step
        self.t0 = 0
        self.pair = -1

    def begin(self) -> None:
        self.pair = self.begin_gpu(self.stream()) if self.stream is not None else -1
        self.t0 = self.now()

    def end(self, step: int, items: float, tokens: float) -> None:
        dur = self.now() - self.t0
        stream = self.stream() if (self.pair >= 0 and self.stream is not None) else 0
        self.end_row(self.pair, stream, self.table, self.name, step, self.ctx_id, self.t0, dur,
                     (self.component, items, tokens, 0.0), GPU_SLOT)  # fmt: skip
        self.pair = -1


def v1_hooks(ctx) -> Hooks:
    t = _Timer(ctx, "encoder")
    job = [0, 0.0]

    def before(self, scheduler_output):
        job[0], job[1] = 0, 0.0
        if scheduler_output.scheduled_encoder_inputs:
            job[0], job[1] = encoder_inputs_of(self, scheduler_output)
            t.begin()

    def after(result, self, scheduler_output):
        if job[0] and result:  # [] = nothing ran (nothing scheduled, or only prompt embeddings)
            t.end(steps.of(scheduler_output, t.current_step()), float(len(result)), job[1])

    return Hooks(before, after)


def v2_hooks(ctx) -> Hooks:
    t = _Timer(ctx, "encoder")

    def before(self, mm_kwargs):
        t.begin()

    def after(result, self, mm_kwargs):
        if mm_kwargs:
            t.end(t.current_step(), float(len(mm_kwargs)), NAN)

    return Hooks(before, after)


def graph_hooks(ctx) -> Hooks:
    t = _Timer(ctx, "encoder_graph", gpu=False)  # inside execute_mm_encoder's bracket

    def before(self):
        t.begin()

    def after(result, self):
        if result is not None:
            t.end(t.current_step(), float(len(result)), NAN)

    return Hooks(before, after)


TARGETS = (
    Target("vllm.v1.worker.gpu_model_runner:GPUModelRunner._execute_mm_encoder", "encoder", None,
           hooks=v1_hooks, roles=WORKER, note="V1: multimodal and encoder-decoder encoders"),
    Target("vllm.v1.worker.gpu.mm.encoder_runner:EncoderRunner.execute_mm_encoder", "encoder", None,
           hooks=v2_hooks, roles=WORKER, note="V2 encoder runner"),
    Target("vllm.v1.worker.encoder_cudagraph:EncoderCudaGraphManager.execute", "encoder_graph", None,
           hooks=graph_hooks, roles=WORKER, note="an encoder CUDA graph run (None = fell back)"),
)  # fmt: skip
