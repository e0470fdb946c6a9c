"""MoE expert load: tokens per layer and expert, per-layer imbalance, co-selected expert pairs.

Writes (worker process) ``moe_expert_activations.csv``, ``moe_load_imbalance.csv`` and
``moe_expert_coselection.csv`` (columns: docs/OUTPUTS.md). Rows are **per-interval increments**:
summing ``activation_count`` over a file gives the run's totals, and a killed run keeps every
interval flushed before the kill.

Where the numbers come from (vLLM 0.32.0, ``model_executor/layers/fused_moe``):

- **Routing.** ``MoERunner._apply_quant_method`` calls ``router.select_experts`` (modular
  kernels, the CPU build's ``CPUUnquantizedExperts`` included); ``BaseRouter._select_experts``
  calls the instance attribute ``capture_fn(topk_ids)`` with the **logical** expert ids, before the
  EPLB mapping to physical ids. After the model is loaded (``Worker.load_model``) the probe sets
  each MoE layer's ``capture_fn`` to a thin function that calls the op
  ``torch.ops.profilemate.moe_count`` (``probes/moe_count.py``; when run as Python rather than
  traced, the op's body directly) on a preallocated device buffer and then the ``capture_fn``
  that was there. ``BaseRouter.set_capture_fn`` is wrapped too, so vLLM's
  own capture (``--enable-return-routed-experts`` binds it after load) is chained behind ours,
  never replaced.
- **Compiled and captured forwards.** The function holds no Python side effect: Dynamo (the CPU
  build compiles the MoE layer into the model graph, ``fullgraph=True``) keeps the op as one opaque
  node, run on every forward. On GPU the MoE layer is vLLM's opaque ``moe_forward`` op, so the
  router runs as Python on eager steps and at CUDA-graph capture; the op's kernels are captured and
  replayed. Padding rows are excluded with ``ForwardContext.is_padding`` (a device mask, read when
  the router runs eagerly; the CPU build has no padding). A device ``gate`` (1 = count) is set to 0
  around ``_dummy_run`` (profile, warm-up, capture) and V2's dummy / profile runs, so those
  forwards are not counted, also when a captured graph replays later.
- **To the host.** Every ``INTERVAL_STEPS`` engine steps, after ``execute_model``: on CPU the
  buffers are read at once; on a GPU an asynchronous copy to pinned host memory is started
  (``non_blocking``, an event recorded, no synchronize) and read at a later flush once the event
  has completed. The increments since the previous read become rows (one ``record_rows`` call per
  table). At the process's final flush (exit or vLLM's ``WorkerProc.shutdown``) the last counts are
  read, waiting for the device there only.

Preempted requests are routed again when they are recomputed, and those tokens are counted again.
Bounded: one buffer ``[layers, (E + 1) + (E + 1)^2]`` (``[layers, E + 1]``, co-selection off,
above ``MAX_COSELECTION_EXPERTS`` experts); at most ``MAX_PAIR_ROWS`` pair rows per layer and
interval (the rest summed into one ``-1, -1`` row). No token ids, no text.
"""

from __future__ import annotations

import logging
import threading

from profilemate.probes import steps
from profilemate.probes.spec import WORKER, Column, Hooks, Table, Target

log = logging.getLogger("profilemate")

INTERVAL_STEPS = 16  # engine steps between two reads of the device counts
MAX_COSELECTION_EXPERTS = 256  # pairs: layers x (E+1)^2 int64 (48 x 257^2 x 8 B = 25 MB)
MAX_PAIR_ROWS = 256  # pair rows per layer and interval; the rest summed into one (-1, -1) row

ACTIVATIONS = Table(
    "moe_expert_activations",
    (
        Column("timestamp_sec", "ts_sec", "s", "when the interval's counts were read on the host"),
        Column("step_id", "step", "", "last engine step of the interval"),
        Column("step_first", "a0", "", "first engine step of the interval"),
        Column("layer_idx", "a1", "", "the model's layer index of the MoE layer"),
        Column("expert_id", "a2", "", "logical expert id; -1 = ids outside 0..E-1 (e.g. zero experts)"),
        Column("activation_count", "a3", "tokens", "tokens routed to the expert in the interval (sum over the file = totals)"),
        Column("percentage", "a4", "%", "share of the layer's routed (token, expert) pairs in the interval"),
    ),
    doc="per interval, one row per layer and expert that received tokens",
)  # fmt: skip
IMBALANCE = Table(
    "moe_load_imbalance",
    (
        Column("timestamp_sec", "ts_sec", "s", "when the interval's counts were read on the host"),
        Column("step_id", "step", "", "last engine step of the interval"),
        Column("step_first", "a0", "", "first engine step of the interval"),
        Column("layer_idx", "a1", "", "the model's layer index of the MoE layer"),
        Column("routed_tokens", "a2", "tokens", "(token, expert) assignments in the interval (tokens x top_k)"),
        Column("max_count", "a3", "tokens", "tokens of the busiest expert"),
        Column("mean_count", "a4", "tokens", "routed_tokens / number of experts"),
        Column("max_mean_ratio", "a5", "", "max_count / mean_count (1 = perfectly balanced)"),
        Column("std_dev", "a6", "tokens", "standard deviation of the experts' counts"),
        Column("max_min_ratio", "a7", "", "max_count / min_count; empty when an expert got none"),
        Column("hottest_expert", "a8", "", "logical id of the busiest expert"),
        Column("idle_experts", "a9", "experts", "experts that got no token in the interval"),
    ),
    doc="per interval, one row per MoE layer that routed tokens",
)  # fmt: skip
COSELECTION = Table(
    "moe_expert_coselection",
    (
        Column("timestamp_sec", "ts_sec", "s", "when the interval's counts were read on the host"),
        Column("step_id", "step", "", "last engine step of the interval"),
        Column("step_first", "a0", "", "first engine step of the interval"),
        Column("layer_idx", "a1", "", "the model's layer index of the MoE layer"),
        Column("expert_id_1", "a2", "", "the lower logical expert id of the pair; -1 = other pairs (see docs)"),
        Column("expert_id_2", "a3", "", "the higher logical expert id of the pair; -1 = other pairs"),
        Column("coselection_count", "a4", "tokens", "tokens that selected both experts in the interval"),
    ),
    doc="per interval, one row per layer and expert pair chosen together by a token",
)  # fmt: skip
TABLES = (ACTIVATIONS, IMBALANCE, COSELECTION)


# --- where counting happens (doctor, logs) ------------------------------------------------------
def counting_path(vllm_config=None) -> tuple[str, str]:
    """(path, why) for the running vLLM: eager Python, custom op inside the compiled graph, or the
    op captured into CUDA graphs (replayed)."""
    try:
        from vllm.platforms import current_platform

        graphs = bool(current_platform.support_static_graph_mode())
        cpu = bool(current_platform.is_cpu())
    except Exception as e:  # pragma: no cover - vLLM not importable
        return "unknown", f"vLLM platform not readable ({type(e).__name__})"
    comp = getattr(vllm_config, "compilation_config", None)
    model_cfg = getattr(vllm_config, "model_config", None)
    eager = bool(getattr(model_cfg, "enforce_eager", False))
    mode = getattr(comp, "mode", None)
    mode_name = str(getattr(mode, "name", mode))
    cg = getattr(comp, "cudagraph_mode", None)
    cg_name = str(getattr(cg, "name", cg))
    if vllm_config is not None and (eager or mode_name in ("NONE", "0")):
        return (
            "eager-python",
            "enforce_eager / compilation mode NONE: the op runs from Python every forward",
        )
    if graphs and (vllm_config is None or cg_name not in ("NONE", "None")):
        return (
            "captured-graph",
            "MoE layer is vLLM's opaque moe_forward op: the router and the counting op run as "
            "Python on eager steps; CUDA-graph capture records the op's kernels, replays count "
            "(gate and padding mask read on the device)",
        )
    if cpu:
        return (
            "compiled-graph",
            "CPU build: MoERunner runs the plain _moe_forward, so Dynamo traces the router into "
            "the model graph (fullgraph=True); profilemate::moe_count stays an opaque node and runs "
            "every forward. enforce_eager gives eager-python",
        )
    return "eager-python", "the MoE op runs the router as Python on every forward (no graphs)"


def doctor_info() -> dict:
    """What `profilemate doctor` shows for MoE counting in this interpreter's vLLM."""
    out: dict = {}
    try:
        import torch

        from profilemate.probes import moe_count  # noqa: F401 (registers the op)

        out["custom_op"] = (
            "registered" if hasattr(torch.ops.profilemate, "moe_count") else "missing"
        )
    except Exception as e:
        out["custom_op"] = f"unavailable ({type(e).__name__}: {e})"
    try:
        from vllm.model_executor.layers.fused_moe.router.base_router import BaseRouter

        out["capture_fn"] = (
            "BaseRouter.capture_fn (logical ids, before EPLB)"
            if hasattr(BaseRouter, "set_capture_fn")
            else "missing: no BaseRouter.set_capture_fn"
        )
    except Exception as e:
        out["capture_fn"] = f"missing ({type(e).__name__})"
    path, why = counting_path(None)
    out["path"] = path
    out["why"] = why
    out["modes"] = {
        "enforce_eager": "eager-python",
        "default compilation": "compiled-graph (CPU) / captured-graph (GPU with CUDA graphs)",
    }
    return out


# --- device counters ------------------------------------------------------------------------------
def _moe_runner_class():
    try:
        from vllm.model_executor.layers.fused_moe.layer import MoERunner
    except ImportError:
        from vllm.model_executor.layers.fused_moe.runner.moe_runner import MoERunner
    return MoERunner


def _padding_reader():
    import torch
    from vllm import forward_context as fc

    available = getattr(fc, "is_forward_context_available", None)

    def padding():
        # Compiled (Dynamo traces this): no padding on the CPU build, and on GPU the router runs
        # eagerly inside vLLM's opaque moe_forward op, so this branch is the CPU graph's.
        if torch.compiler.is_compiling():
            return None
        if available is not None and not available():
            return None
        return getattr(fc.get_forward_context(), "is_padding", None)

    return padding


def _make_capture(op, buf, gate, row, num_experts, inner, padding):
    """The router's capture_fn: count, then the capture_fn that was there (vLLM's own).

    Traced by Dynamo (the CPU build's compiled graph): the op, one opaque node. Run as Python
    (enforce_eager; on GPU inside vLLM's opaque moe_forward, also at graph capture): the op's body
    directly, the same tensor operations without the dispatcher's cost (bench/bench_moe_count.py).
    """
    import torch

    from profilemate.probes.moe_count import _count as direct

    def profilemate_moe_capture(topk_ids):
        if torch.compiler.is_compiling():
            op(buf, topk_ids, gate, row, num_experts, None)  # no padding on the CPU build
        else:
            direct(buf, topk_ids, gate, row, num_experts, padding())
        if inner is not None:
            inner(topk_ids)

    return profilemate_moe_capture


COMPILE_CACHE_KEY = "profilemate_moe_count"


def _key_compile_cache(vllm_config) -> None:
    """Give vLLM's compile cache a key of its own for graphs that hold our op.

    vLLM 0.32 keys its AOT-compiled model (``torch_compile_cache/torch_aot_compile/<hash>``) on its
    environment and ``VllmConfig.compute_hash()`` only, which includes ``additional_config``. Without
    this, a graph compiled with the counter would be loaded by a later run without ProfileMate (the
    op is not registered there), and a graph compiled without it by a profiled run (nothing counted).
    """
    extra = getattr(vllm_config, "additional_config", None)
    if isinstance(extra, dict):
        from profilemate import _version

        extra[COMPILE_CACHE_KEY] = f"{_version.__version__}/1"
    elif vllm_config is not None:
        log.warning(
            "moe: vLLM's additional_config is not a dict: compiled graphs with and without the "
            "MoE counter share vLLM's compile cache (set VLLM_DISABLE_COMPILE_CACHE=1)"
        )


class _State:
    """The process's MoE counters: device buffers, the host baseline, the interval."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.recorder = None
        self.routers: dict[int, tuple] = {}  # id(router) -> (router, row, our capture_fn)
        self.buf = self.gate = None  # device: [layers, W] counts (moe_count.py), gate [1]
        self.gate_on = True
        self.num_experts = 0
        self.top_k = 0
        self.layer_ids = None  # numpy int64 [L]
        self.prev = None  # numpy [layers, W]: the cumulative counts at the last read
        self.first = None  # first step since the last read
        self.last = -1
        self.since = 0
        self.own_step = 0
        self.pending = None  # GPU: (event, first, last) of the copy into self.host in flight
        self.host = None  # GPU: pinned host copy of buf
        self.tables = None
        self.cuda = False
        self.path = ("", "")
        self.skipped_layers = 0

    # -- install ----------------------------------------------------------------------------------
    def install(self, model, vllm_config) -> None:
        import torch
        from vllm.model_executor.layers.fused_moe.router.base_router import BaseRouter

        runner_cls = _moe_runner_class()
        layers = []
        for module in model.modules():
            if not isinstance(module, runner_cls):
                continue
            router = getattr(module, "router", None)
            if getattr(module, "is_monolithic", False) or not isinstance(router, BaseRouter):
                self.skipped_layers += 1  # the kernel routes inside; no select_experts call
                continue
            layers.append(module)
        if not layers:
            log.info(
                "moe: no MoE layer with a router capture point (%d skipped)", self.skipped_layers
            )
            return
        ids = []
        for i, m in enumerate(layers):
            try:
                ids.append(int(m.layer_id))
            except Exception:
                ids.append(i)
        cfg = getattr(layers[0], "moe_config", None)
        router0 = layers[0].router
        num_experts = int(
            getattr(cfg, "num_logical_experts", 0)
            or getattr(cfg, "num_experts", 0)
            or router0.global_num_experts
        )
        top_k = int(getattr(router0, "top_k", 0) or getattr(cfg, "experts_per_token", 0))
        try:
            device = next(model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
        self.attach([m.router for m in layers], ids, num_experts, top_k, device)
        self.path = counting_path(vllm_config)
        _key_compile_cache(vllm_config)
        log.info(
            "moe: counting %d layers x %d experts (top-%d) on %s; path %s: %s",
            len(layers), num_experts, top_k, device, *self.path,
        )  # fmt: skip

    def attach(self, routers, layer_ids, num_experts: int, top_k: int, device) -> None:
        """Buffers for ``len(routers)`` layers; each router's capture_fn counts into its row."""
        import numpy as np
        import torch

        from profilemate.probes import moe_count

        co = num_experts <= MAX_COSELECTION_EXPERTS
        self.buf, self.gate = moe_count.buffers(len(routers), num_experts, device, co)
        self.cuda = torch.device(device).type == "cuda"
        self.gate_on = True
        self.num_experts, self.top_k = num_experts, top_k
        self.layer_ids = np.asarray(layer_ids, dtype=np.int64)
        self.prev = np.zeros(tuple(self.buf.shape), dtype=np.int64)
        if top_k >= 2:
            moe_count.pair_index(top_k, device)  # made now, not inside a captured graph
        self.first, self.since, self.pending, self.host = None, 0, None, None
        self.routers = {}
        self._op = torch.ops.profilemate.moe_count.default
        self._padding = _padding_reader()
        for row, router in enumerate(routers):
            fn = _make_capture(
                self._op, self.buf, self.gate, row, num_experts, router.capture_fn, self._padding
            )
            router.capture_fn = fn
            self.routers[id(router)] = (router, row, fn)

    def rechain(self, router, capture_fn) -> None:
        """vLLM set a new capture_fn on a router we count: ours first, then theirs."""
        entry = self.routers.get(id(router))
        if entry is None or entry[0] is not router or capture_fn is entry[2]:
            return
        fn = _make_capture(
            self._op, self.buf, self.gate, entry[1], self.num_experts, capture_fn, self._padding
        )
        router.capture_fn = fn
        self.routers[id(router)] = (router, entry[1], fn)

    # -- gate ------------------------------------------------------------------------------------
    def set_gate(self, on: bool) -> None:
        if self.gate is None or on == self.gate_on:
            return
        self.gate.fill_(1 if on else 0)  # a device op on the current stream; no sync
        self.gate_on = on

    # -- steps and reads -------------------------------------------------------------------------
    def step_done(self, step: int) -> None:
        if self.buf is None:
            return
        if step < 0:
            self.own_step += 1
            step = self.own_step
        if self.first is None:
            self.first = step
        self.last = step
        self.since += 1
        if self.since >= INTERVAL_STEPS:
            self.read(final=False)

    def read(self, final: bool) -> None:
        with self.lock:
            if self.buf is None or self.recorder is None:
                return
            if self.cuda:
                self._read_cuda(final)
            elif self.first is not None:
                self._emit(self.buf.detach().cpu().numpy().copy(), self.first, self.last)
                self.first, self.since = None, 0

    def _read_cuda(self, final: bool) -> None:
        import torch

        if self.pending is not None:
            event, first, last = self.pending
            if final:
                event.synchronize()  # at the process's end only
            if final or event.query():
                self.pending = None
                self._emit(self.host.numpy().copy(), first, last)
        if self.first is None or self.pending is not None:
            return  # nothing new, or the previous copy is still in flight (joins the next read)
        if self.host is None:
            self.host = torch.empty(self.buf.shape, dtype=self.buf.dtype, pin_memory=True)
        self.host.copy_(self.buf, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.pending = (event, self.first, self.last)
        self.first, self.since = None, 0
        if final:
            self._read_cuda(final=True)  # waits for the copy just made and emits it

    def _emit(self, cumulative, first: int, last: int) -> None:
        """Rows for the increments since the previous read (cumulative host arrays in)."""
        from profilemate.probes.moe_count import split

        dc, dp = split(cumulative - self.prev, self.num_experts)
        self.prev = cumulative
        rec = self.recorder
        emit_rows(rec, self.tables, dc, dp, self.layer_ids, self.num_experts, first, last)


def emit_rows(rec, tables, dc, dp, layer_ids, num_experts: int, first: int, last: int) -> None:
    """The three tables' rows for one interval's increments ``dc`` [L, E+1], ``dp`` [L, (E+1)^2]
    (``moe_count.split``; ``dp`` [L, 0] without co-selection)."""
    import numpy as np

    act_t, imb_t, co_t, name = tables
    E = num_experts
    tot = dc.sum(axis=1)
    if not tot.any():
        return
    li, ei = np.nonzero(dc)
    cnt = dc[li, ei]
    pct = 100.0 * cnt / tot[li]
    expert = np.where(ei == E, -1, ei)
    flat = np.column_stack([np.full(len(li), first), layer_ids[li], expert, cnt, pct]).astype(
        np.float64
    )
    rec.rows(act_t, name, last, 5, flat.ravel().tolist())

    real = dc[:, :E]
    active = tot > 0
    assigned = real.sum(axis=1)[active]
    mx = real.max(axis=1)[active]
    mn = real.min(axis=1)[active]
    mean = assigned / E
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean > 0, mx / mean, np.nan)
        mmr = np.where(mn > 0, mx / np.where(mn > 0, mn, 1), np.nan)
    std = real[active].std(axis=1)
    flat = np.column_stack(
        [
            np.full(int(active.sum()), first),
            layer_ids[active],
            tot[active],
            mx,
            mean,
            ratio,
            std,
            mmr,
            real.argmax(axis=1)[active],
            (real == 0).sum(axis=1)[active],
        ]
    ).astype(np.float64)
    rec.rows(imb_t, name, last, 10, flat.ravel().tolist())

    if dp.shape[1] == 0:
        return
    e1 = E + 1
    parts = []
    for row in range(dp.shape[0]):
        d = dp[row]
        slots = np.nonzero(d)[0]
        if len(slots) == 0:
            continue
        a, b = slots // e1, slots % e1  # a <= b by construction
        valid = (a < b) & (b < E)
        vals = d[slots[valid]]
        a, b = a[valid], b[valid]
        other = int(d.sum() - vals.sum())  # repeated ids, ids outside 0..E-1
        if len(vals) > MAX_PAIR_ROWS:
            keep = np.argsort(vals, kind="stable")[::-1][:MAX_PAIR_ROWS]
            other += int(vals.sum() - vals[keep].sum())
            a, b, vals = a[keep], b[keep], vals[keep]
        n = len(vals)
        if n:
            parts.append(
                np.column_stack([np.full(n, first), np.full(n, layer_ids[row]), a, b, vals])
            )
        if other:
            parts.append(np.array([[first, layer_ids[row], -1, -1, other]]))
    if parts:
        flat = np.concatenate(parts).astype(np.float64)
        rec.rows(co_t, name, last, 5, flat.ravel().tolist())


_STATE = _State()


def _bind(ctx) -> _State:
    st = _STATE
    if st.recorder is not ctx.recorder:
        st.recorder = ctx.recorder
        st.tables = (
            ctx.table_id(ACTIVATIONS),
            ctx.table_id(IMBALANCE),
            ctx.table_id(COSELECTION),
            ctx.intern("moe"),
        )
        try:
            from profilemate.activation import runtime

            runtime.get().add_final_flush(_final_flush)
        except Exception:
            log.debug("moe: no final flush registered", exc_info=True)
    return st


def _final_flush() -> None:
    _STATE.read(final=True)


# --- hooks ----------------------------------------------------------------------------------------
def load_model_hooks(ctx) -> Hooks:
    st = _bind(ctx)

    def after(result, self):
        runner = getattr(self, "model_runner", None)
        model = getattr(runner, "model", None)
        if model is None:
            return
        st.install(model, getattr(self, "vllm_config", None))

    return Hooks(after=after)


def set_capture_fn_hooks(ctx) -> Hooks:
    st = _bind(ctx)

    def after(result, self, capture_fn):
        st.rechain(self, capture_fn)

    return Hooks(after=after)


def dummy_run_hooks(ctx) -> Hooks:
    st = _bind(ctx)

    def before(self):
        st.set_gate(False)

    def after(result, self):
        st.set_gate(True)

    return Hooks(before, after)


def execute_model_hooks(ctx) -> Hooks:
    st = _bind(ctx)

    def before(self, scheduler_output):
        st.set_gate(True)  # also after a _dummy_run that raised (its after hook did not run)

    def after(result, self, scheduler_output):
        if scheduler_output.total_num_scheduled_tokens:
            st.step_done(steps.of(scheduler_output))

    return Hooks(before, after)


def v2_execute_model_hooks(ctx) -> Hooks:
    st = _bind(ctx)

    def before(self, scheduler_output, dummy_run, is_profile):
        st.set_gate(not (dummy_run or is_profile))

    def after(result, self, scheduler_output, dummy_run, is_profile):
        if dummy_run or is_profile:
            st.set_gate(True)
        elif scheduler_output.total_num_scheduled_tokens:
            st.step_done(steps.of(scheduler_output))

    return Hooks(before, after)


V1 = "vllm.v1.worker.gpu_model_runner:GPUModelRunner."
V2 = "vllm.v1.worker.gpu.model_runner:GPUModelRunner."
ROUTER = "vllm.model_executor.layers.fused_moe.router.base_router:BaseRouter."

TARGETS = (
    Target("vllm.v1.worker.gpu_worker:Worker.load_model", "load_model", None,
           hooks=load_model_hooks, roles=WORKER,
           note="after the model is built (before the profile run and compilation): counters on each router"),
    Target(ROUTER + "set_capture_fn", "set_capture_fn", None, hooks=set_capture_fn_hooks,
           roles=WORKER, note="vLLM's own capture_fn is chained behind the counter, never replaced"),
    Target(V1 + "_dummy_run", "dummy_run", None, hooks=dummy_run_hooks, roles=WORKER,
           note="profile / warm-up / capture forwards: the device gate is 0 (not counted)"),
    Target(V1 + "execute_model", "execute_model", None, hooks=execute_model_hooks, roles=WORKER,
           note="after each step with tokens: counts read every INTERVAL_STEPS steps"),
    Target(V2 + "execute_model", "execute_model", None, hooks=v2_execute_model_hooks,
           roles=WORKER, note="V2 runner: dummy / profile runs gated off; steps read as V1"),
)  # fmt: skip
