"""CUDA graphs: per forward the runtime mode (FULL / PIECEWISE / NONE), the batch descriptor, the
padding, and for eager forwards the reason; captures with their time; replays per descriptor.

Writes ``cuda_graph_timeline.csv`` (one row per forward), ``cuda_graph_captures.csv`` (one row per
captured graph) and ``cuda_graph_usage.csv`` (one row per forward that ran from a graph, with the
running replay count of its descriptor: the last row of a descriptor is its total). Checked in vLLM
0.32.0:

- **V1** (``v1/worker/gpu_model_runner.py``): ``_determine_batch_execution_and_padding`` returns the
  mode and ``BatchDescriptor`` vLLM will run (after the DP re-dispatch); its ``num_tokens`` argument
  is the unpadded count, ``BatchDescriptor.num_tokens`` the padded one. It also runs in
  ``_dummy_run``: those calls are marked by the bracket (``_dummy_run``) and not counted as serving
  forwards. The row is written around ``_model_forward`` (called once per serving forward, outside
  every graph wrapper and outside the compiled model).
- **Capture vs replay**: ``compilation/cuda_graph.py: CUDAGraphWrapper.__call__`` captures when the
  forward context's mode equals the wrapper's and the descriptor's entry has no graph yet, replays
  when it has one, and passes through otherwise. PIECEWISE gives one wrapper call per piece; only
  the first piece has ``cudagraph_options.debug_log_enable`` (``compilation/backends.py:684``,
  ``compilation/decorators.py:800``: ``is_first_graph`` / ``partition_id == 0``), so the hook
  counts one event per forward. ``__call__`` is plain Python called by the split graph module that
  the compile backend returned (or around the whole model, FULL): it is never traced by Dynamo.
- **V2** (``v1/worker/gpu/``): FULL graphs bypass ``CUDAGraphWrapper``: ``CudaGraphManager.run_fullgraph(desc)``
  replays, ``CudaGraphManager.capture`` (called by ``ModelCudaGraphManager.capture`` and the
  drafters' managers through ``super()``) fills ``self.graphs`` with the FULL graphs (diffed around
  the call; PIECEWISE captures go through ``CUDAGraphWrapper``); the decision is
  ``dp_utils.dispatch_cg_and_sync_dp`` (imported by name into the model runner), its eager reason
  ``eager_reason_v2``. V2's ``BatchExecutionDescriptor`` has ``uniform_token_count`` for uniform
  decode graphs (no ``uniform``) and ``num_active_loras`` (no ``has_lora``).
- **BreakableCUDAGraphWrapper** (``compilation/breakable_cudagraph.py``): ``_capture`` / ``_replay``.

Eager reasons follow vLLM's own order (``CudagraphDispatcher.dispatch`` and its caller): see
``eager_reason_v1``. On CPU every forward is NONE with "platform without static graphs".
"""

from __future__ import annotations

from profilemate.probes.spec import WORKER, Column, Hooks, Table, Target

TIMELINE = Table(
    "cuda_graph_timeline",
    (
        Column("timestamp_sec", "ts_sec", "s", "forward start, seconds since the session start"),
        Column("step_id", "step", "", "engine step"),
        Column("runtime_mode", "s0", "", "FULL, PIECEWISE or NONE (eager), as vLLM dispatched the forward"),
        Column("eager_reason", "s1", "", "why the forward ran eagerly (empty when it ran from a graph)"),
        Column("graph_action", "s2", "", "replay, capture or eager: what the graph wrapper did"),
        Column("num_tokens", "a3", "tokens", "tokens before padding"),
        Column("num_padded_tokens", "a4", "tokens", "tokens of the batch descriptor (after padding)"),
        Column("num_reqs", "a5", "requests", "requests in the forward (before padding): the num_reqs vLLM dispatched with (V1 _determine_batch_execution_and_padding, V2 dispatch_cg_and_sync_dp)"),
        Column("uniform", "a6", "", "1 when the descriptor is a uniform decode batch"),
        Column("has_lora", "a7", "", "1 when LoRA is active in the descriptor"),
        Column("duration_ms", "dur_ms", "ms", "host wall time of the forward call"),
        Column("descriptor_num_reqs", "a8", "requests", "requests of the batch descriptor, i.e. the graph's padded request count (empty when the descriptor has none: eager forwards and PIECEWISE graphs)"),
    ),
    doc="one row per model forward",
)  # fmt: skip
CAPTURES = Table(
    "cuda_graph_captures",
    (
        Column("timestamp_sec", "ts_sec", "s", "capture start"),
        Column("runtime_mode", "s0", "", "FULL or PIECEWISE"),
        Column("num_tokens", "a1", "tokens", "padded tokens of the captured descriptor"),
        Column("num_reqs", "a2", "requests", "requests of the descriptor (empty: any)"),
        Column("uniform", "a3", "", "1 for a uniform decode graph"),
        Column("has_lora", "a4", "", "1 with LoRA"),
        Column("capture_time_ms", "dur_ms", "ms", "host wall time of the capture call (all pieces of a PIECEWISE forward: the first piece's call only)"),
        Column("source", "s5", "", "CUDAGraphWrapper, CudaGraphManager (V2 FULL) or BreakableCUDAGraphWrapper"),
    ),
    doc="one row per captured graph",
)  # fmt: skip
USAGE = Table(
    "cuda_graph_usage",
    (
        Column("timestamp_sec", "ts_sec", "s", "replay time"),
        Column("step_id", "step", "", "engine step"),
        Column("runtime_mode", "s0", "", "FULL or PIECEWISE"),
        Column("num_tokens", "a1", "tokens", "padded tokens of the descriptor"),
        Column("num_reqs", "a2", "requests", "requests of the descriptor (empty: any)"),
        Column("uniform", "a3", "", "1 for a uniform decode graph"),
        Column("has_lora", "a4", "", "1 with LoRA"),
        Column("replay_count", "a5", "replays", "replays of this descriptor so far in this process (the last row of a descriptor is its total)"),
    ),
    doc="one row per forward that replayed a graph",
)  # fmt: skip
TABLES = (TIMELINE, CAPTURES, USAGE)

NAN = float("nan")

# Reasons, in vLLM 0.32.0's order of decision (v1/cudagraph_dispatcher.py: dispatch, and
# gpu_model_runner.py: _determine_batch_execution_and_padding).
NO_STATIC_GRAPHS = "platform without static graphs"
KEYS_NOT_INITIALIZED = "graph keys not initialised (before capture)"
MODE_NONE = "cudagraph mode NONE (enforce_eager, or unsupported by model/backend)"
NO_CAPTURE_SIZES = "no capture sizes"
ABOVE_MAX = "above the largest capture size"
FORCED_EAGER = "forced eager (dummy run)"
DP_EAGER = "DP ranks agreed on eager"
ENCODER_INPUTS = "encoder inputs (FULL excluded, no PIECEWISE graph)"
NO_GRAPH = "no graph for this shape"
V2_NEED_EAGER = "profile run or encoder inputs (need_eager)"
V2_NOT_CAPTURED = "graphs not captured yet"
V2_ZERO = "no tokens"


def _mode_name(mode) -> str:
    # Enum members keep their name in ``_name_`` (the ``name`` property costs ~10x more).
    try:
        return mode._name_
    except AttributeError:
        return getattr(mode, "name", None) or str(mode)


_static_graphs: list = []  # the platform's answer, asked once per process (it never changes)


def _static_graphs_supported() -> bool:
    if _static_graphs:
        return _static_graphs[0]
    try:
        from vllm.platforms import current_platform

        ok = bool(current_platform.support_static_graph_mode())
    except Exception:
        return True  # not cached: vLLM's platform may not be resolvable yet
    _static_graphs.append(ok)
    return ok


def eager_reason_v1(
    dispatcher,
    num_tokens,
    mode,
    *,
    force_eager=False,
    has_encoder_output=False,
    uniform_decode=False,
    has_lora=False,
    num_active_loras=0,
    dp_size=1,
    static_graphs=None,
) -> str:
    """Why vLLM's V1 dispatch answered NONE for this forward ("" when it did not).

    Mirrors ``CudagraphDispatcher.dispatch``'s own tests in their order; for the last two (DP
    agreement, encoder inputs) it asks the dispatcher again without the constraint -- dispatch reads
    state only -- and names the constraint when that would have found a graph.
    """  # fmt: skip
    if _mode_name(mode) != "NONE":
        return ""
    if static_graphs is None:
        static_graphs = _static_graphs_supported()
    if not static_graphs:
        return NO_STATIC_GRAPHS
    if not dispatcher.keys_initialized:
        return KEYS_NOT_INITIALIZED
    if _mode_name(dispatcher.cudagraph_mode) == "NONE":
        return MODE_NONE
    max_size = dispatcher.compilation_config.max_cudagraph_capture_size
    if max_size is None:
        return NO_CAPTURE_SIZES
    if num_tokens > max_size:
        return ABOVE_MAX
    if force_eager:
        return FORCED_EAGER
    kw = dict(uniform_decode=uniform_decode, has_lora=has_lora, num_active_loras=num_active_loras)
    if has_encoder_output:
        if _mode_name(dispatcher.dispatch(num_tokens, **kw)[0]) != "NONE":
            return ENCODER_INPUTS
        return NO_GRAPH
    if dp_size > 1 and _mode_name(dispatcher.dispatch(num_tokens, **kw)[0]) != "NONE":
        return DP_EAGER
    return NO_GRAPH


def _desc_values(desc, unpadded):
    try:  # V1's BatchDescriptor (every forward): plain attribute reads
        reqs = desc.num_reqs
        return (
            float(desc.num_tokens),
            NAN if reqs is None else float(reqs),
            1.0 if desc.uniform else 0.0,
            1.0 if desc.has_lora or desc.num_active_loras else 0.0,
        )
    except AttributeError:
        pass
    # V2's BatchExecutionDescriptor: uniform decode graphs carry uniform_token_count (the query
    # length of every request), LoRA graphs num_active_loras; no `uniform` / `has_lora`.
    padded = getattr(desc, "num_tokens", unpadded)
    reqs = getattr(desc, "num_reqs", None)
    uniform = getattr(desc, "uniform", None)
    if uniform is None:
        uniform = getattr(desc, "uniform_token_count", None) is not None
    return (
        float(padded),
        NAN if reqs is None else float(reqs),
        1.0 if uniform else 0.0,
        1.0 if getattr(desc, "has_lora", False) or getattr(desc, "num_active_loras", 0) else 0.0,
    )


class _State:
    """The worker's current forward, between the dispatch hook and the forward's row."""

    def __init__(self) -> None:
        self.mode = "NONE"
        self.reason = ""
        self.unpadded = 0
        self.num_reqs = 0  # requests vLLM dispatched with (unpadded)
        self.desc = None
        self.dvals = (
            0.0,
            NAN,
            0.0,
            0.0,
        )  # _desc_values(desc): padded, descriptor reqs, uniform, lora
        self.action = ""  # set by the graph wrapper hooks during the forward
        # (mode, (padded tokens, descriptor reqs, uniform, lora)) -> the usage row's values, the
        # replays so far last; bounded by the captured shapes. Keyed by plain numbers: vLLM's
        # descriptors are dataclasses whose hash and __eq__ run in Python (~1 us per lookup).
        self.replays: dict = {}

    def set_forward(self, mode: str, desc, unpadded: int, num_reqs: int) -> None:
        self.mode = mode
        self.desc = desc
        self.unpadded = unpadded
        self.num_reqs = num_reqs
        self.dvals = _desc_values(desc, unpadded)
        self.action = ""
        self.reason = ""


_state = _State()


def determine_hooks(ctx) -> Hooks:
    def after(result, self, num_tokens, num_reqs, num_scheduled_tokens_np, max_num_scheduled_tokens,
              force_eager, force_uniform_decode, num_encoder_reqs):  # fmt: skip
        mode, desc = result[0], result[1]
        s = _state
        s.set_forward(_mode_name(mode), desc, num_tokens, num_reqs)
        if s.mode != "NONE":
            return
        if not _static_graphs_supported():
            s.reason = NO_STATIC_GRAPHS  # the CPU build: every forward, decided first
            return
        enc = bool(self.model_config.is_encoder_decoder and num_encoder_reqs)
        uniform = self._is_uniform_decode(
            max_num_scheduled_tokens=max_num_scheduled_tokens,
            uniform_decode_query_len=self.uniform_decode_query_len,
            num_tokens=num_tokens, num_reqs=num_reqs,
            force_uniform_decode=force_uniform_decode,
        )  # fmt: skip
        s.reason = eager_reason_v1(
            self.cudagraph_dispatcher, num_tokens, mode, force_eager=force_eager,
            has_encoder_output=enc, uniform_decode=uniform,
            has_lora=bool(getattr(desc, "has_lora", False)),
            num_active_loras=getattr(desc, "num_active_loras", 0),
            dp_size=self.vllm_config.parallel_config.data_parallel_size, static_graphs=True,
        )  # fmt: skip

    return Hooks(after=after)


class _Ids(dict):
    """text -> its interned id as a float (the row's value): one dict subscript on the hot path."""

    def __init__(self, ctx) -> None:
        super().__init__()
        self._intern = ctx.intern
        for text in ("", "NONE", "FULL", "PIECEWISE", "replay", "capture", "eager"):
            self[text]  # noqa: B018 (interned up front)

    def __missing__(self, text: str) -> float:
        i = self[text] = float(self._intern(text))
        return i


def _interner(ctx):
    """intern(text) -> id (an int), cached (the capture rows' path)."""
    ids = _Ids(ctx)
    return lambda text: int(ids[text])


def _row_values(ids, s):
    """The timeline row's values (TIMELINE's a-columns in order)."""
    action = s.action or ("eager" if s.mode == "NONE" else "")
    padded, desc_reqs, uniform, lora = s.dvals
    return (ids[s.mode], ids[s.reason], ids[action], float(s.unpadded), padded,
            float(s.num_reqs), uniform, lora, desc_reqs)  # fmt: skip


def _usage_writer(ctx):
    """usage(s, step): the usage row of a replayed forward, with its descriptor's running count."""
    record = ctx.recorder._core.record_row
    usage = ctx.table_id(USAGE)
    name = ctx.intern("replay")
    ids = _Ids(ctx)

    def write(s, step) -> None:
        # The key holds plain numbers (dvals: floats; a missing descriptor count is the module's
        # one NAN object, and a tuple compares its items by identity first, so equal descriptors
        # give equal keys); the value: the usage row's values, the replays so far last.
        key = (s.mode, s.dvals)
        row = s.replays.get(key)
        if row is None:
            row = s.replays[key] = [ids[s.mode], *s.dvals, 0.0]
        row[-1] += 1.0  # the running count is the row's last value: the list goes as it is
        record(usage, name, 0, 0, step, 0, row, None)

    return write


def model_forward_hooks(ctx) -> Hooks:
    """V1 _model_forward: the timeline row (and the usage row of a replay). The forward's state was
    reset by the dispatch hook (_determine_batch_execution_and_padding runs first, every forward)."""
    ids = _Ids(ctx)
    usage = _usage_writer(ctx)
    current_step = ctx.recorder.current_step

    def after(result, self):
        s = _state
        if s.action == "replay":
            usage(s, current_step())
        return _row_values(ids, s)

    return Hooks(after=after)


def wrapper_call_hooks(ctx) -> Hooks:
    """CUDAGraphWrapper.__call__: capture / replay / pass-through, once per forward (first piece).

    vLLM (``compilation/cuda_graph.py: CUDAGraphWrapper.__call__``) passes through when the forward
    context's mode is NONE or not the wrapper's own; otherwise it captures when the descriptor's
    entry has no graph yet (and then adds one to ``compilation_counter.num_cudagraph_captured``)
    and replays when it has one. The before hook makes the same mode test; the after hook tells a
    capture from a replay by that counter (read before and after the call: two attribute reads,
    where looking the descriptor up in ``concrete_cudagraph_entries`` costs a Python-level
    dataclass hash and ``__eq__``). Should the counter be missing, the entry is looked up.

    The hooks are shared by every wrapper instance, and wrappers nest: with FULL_AND_PIECEWISE the
    FULL wrapper around the model calls the PIECEWISE wrappers inside it (which pass through, the
    forward's mode not being theirs). The call is therefore closed only by the wrapper that
    opened it (``cur[0]``), never by a nested one.
    """
    import vllm.forward_context as fcm

    fast_fc = hasattr(fcm, "_forward_context")  # vLLM's global, read directly (2 calls fewer)

    def current_fc():  # another vLLM layout
        return fcm.get_forward_context() if fcm.is_forward_context_available() else None

    try:
        from vllm.compilation.counter import compilation_counter as counter

        counter.num_cudagraph_captured  # noqa: B018 (the attribute must exist)
    except Exception:
        counter = None
    rec = ctx.recorder
    now = rec.now_ns
    captures = ctx.table_id(CAPTURES)
    name = ctx.intern("capture")
    src = float(ctx.intern("CUDAGraphWrapper"))
    intern = _interner(ctx)
    cur = [None, 0, None, 0]  # the wrapper whose call is open, its start (ns), descriptor, count

    def before(self):
        if cur[0] is self:
            cur[0] = cur[2] = None  # its last call raised (no after): nothing to record
        if not self.cudagraph_options.debug_log_enable:
            return  # not the first piece: one record per forward
        fc = fcm._forward_context if fast_fc else current_fc()
        if fc is None:
            return  # no forward context: vLLM runs the runnable directly
        mode = fc.cudagraph_runtime_mode
        if mode is not self.runtime_mode:
            # vLLM passes through (NONE, or not the wrapper's mode, which is never NONE).
            # CUDAGraphMode is a plain enum.Enum: its == is identity, as `is` here.
            return
        desc = fc.batch_descriptor
        if counter is None:
            entry = self.concrete_cudagraph_entries.get(desc)
            n = 0 if entry is None or entry.cudagraph is None else -1  # -1: a replay
        else:
            n = counter.num_cudagraph_captured
        cur[0], cur[1], cur[2], cur[3] = self, now(), desc, n

    def after(result, self):
        if cur[0] is not self:
            return
        start, desc, n = cur[1], cur[2], cur[3]
        cur[0] = cur[2] = None
        if counter is None:
            captured = n != -1
        else:
            captured = counter.num_cudagraph_captured != n
        if not captured:
            _state.action = "replay"
            return
        _state.action = "capture"
        rec.row(captures, name, rec.current_step(),
                (float(intern(_mode_name(self.runtime_mode))), *_desc_values(desc, 0), src),
                ts_ns=start, dur_ns=now() - start)  # fmt: skip

    return Hooks(before, after)


def v2_capture_hooks(ctx) -> Hooks:
    """ModelCudaGraphManager.capture: the descriptors it added to self.graphs, one row each."""
    rec = ctx.recorder
    captures = ctx.table_id(CAPTURES)
    name = ctx.intern("capture")
    src = ctx.intern("CudaGraphManager")
    intern = _interner(ctx)
    seen = [frozenset(), 0]

    def before(self):
        seen[0] = frozenset(self.graphs)
        seen[1] = rec.now_ns()

    def after(result, self):
        new = [d for d in self.graphs if d not in seen[0]]
        dur = rec.now_ns() - seen[1]
        for d in new:  # the call captures them one after another; its time is shared evenly
            rec.row(captures, name, -1, (float(intern(_mode_name(d.cg_mode))), *_desc_values(d, 0), float(src)),
                    ts_ns=seen[1], dur_ns=dur // max(len(new), 1))  # fmt: skip

    return Hooks(before, after)


def v2_run_fullgraph_hooks(ctx) -> Hooks:
    def before(self, desc):
        s = _state
        if s.desc is not desc:  # the dispatch hook saw this descriptor already (it keeps num_reqs)
            s.set_forward(
                _mode_name(desc.cg_mode), desc, getattr(desc, "num_tokens", 0), s.num_reqs
            )
        s.action = "replay"

    return Hooks(before=before)


def eager_reason_v2(
    manager,
    num_reqs,
    num_tokens,
    mode,
    *,
    uniform_token_count=None,
    num_active_loras=0,
    max_query_len=None,
    need_eager=False,
    dp_size=1,
    static_graphs=None,
) -> str:
    """Why V2's ``dispatch_cg_and_sync_dp`` answered NONE ("" when it did not).

    vLLM 0.32.0, ``v1/worker/gpu/dp_utils.py: dispatch_cg_and_sync_dp`` then
    ``cudagraph_utils.py: CudaGraphManager.dispatch``, in their order: ``need_eager`` (profile run,
    or an encoder-decoder step with encoder inputs); no manager or its mode NONE (no candidates);
    graphs not captured yet; no tokens; then no candidate for the token count (above the largest
    capture size) or none compatible. With DP, a NONE the manager alone would not have given is the
    ranks' agreement (``sync_cudagraph_and_dp_padding``): the manager is asked again -- dispatch
    reads state only.
    """
    if _mode_name(mode) != "NONE":
        return ""
    if static_graphs is None:
        static_graphs = _static_graphs_supported()
    if not static_graphs:
        return NO_STATIC_GRAPHS
    if need_eager:
        return V2_NEED_EAGER
    if manager is None or _mode_name(manager.cudagraph_mode) == "NONE":
        return MODE_NONE
    if not manager._graphs_captured:
        return V2_NOT_CAPTURED
    if num_tokens == 0:
        return V2_ZERO
    if dp_size > 1:
        alone = manager.dispatch(num_reqs, num_tokens, uniform_token_count, num_active_loras,
                                 max_query_len=max_query_len)  # fmt: skip
        if _mode_name(alone.cg_mode) != "NONE":
            return DP_EAGER
    max_size = manager.compilation_config.max_cudagraph_capture_size
    if max_size is not None and num_tokens > max_size:
        return ABOVE_MAX
    return NO_GRAPH


def v2_dispatch_hooks(ctx) -> Hooks:
    """dispatch_cg_and_sync_dp: the V2 decision, with the reason when it is eager."""

    def after(result, cudagraph_manager, num_reqs, num_tokens, uniform_token_count, dp_size,
              max_query_len, need_eager, num_active_loras):  # fmt: skip
        desc = result[0]
        s = _state
        s.set_forward(_mode_name(desc.cg_mode), desc, num_tokens, num_reqs)
        if s.mode != "NONE":
            return
        s.reason = eager_reason_v2(
            cudagraph_manager, num_reqs, num_tokens, desc.cg_mode,
            uniform_token_count=uniform_token_count, num_active_loras=num_active_loras,
            max_query_len=max_query_len, need_eager=need_eager, dp_size=dp_size,
        )  # fmt: skip

    return Hooks(after=after)


def v2_execute_model_hooks(ctx) -> Hooks:
    """V2 execute_model: the forward's timeline row (no _model_forward in V2) and the usage row of
    a replay; dummy runs skipped."""
    ids = _Ids(ctx)
    usage_row = _usage_writer(ctx)
    rec = ctx.recorder
    table = ctx.table_id(TIMELINE)
    name = ctx.intern("forward")
    t0 = [0]

    def before(self, dummy_run):
        _state.action = ""
        _state.desc = None
        t0[0] = rec.now_ns()

    def after(result, self, dummy_run):
        s = _state
        if dummy_run or s.desc is None:
            return
        step = rec.current_step()
        if s.action == "replay":
            usage_row(s, step)
        rec.row(table, name, step, _row_values(ids, s), ts_ns=t0[0], dur_ns=rec.now_ns() - t0[0])

    return Hooks(before, after)


def breakable_capture_hooks(ctx) -> Hooks:
    def before(self):
        _state.action = "capture"

    return Hooks(before=before)


def breakable_replay_hooks(ctx) -> Hooks:
    def before(self):
        _state.action = "replay"

    return Hooks(before=before)


V1 = "vllm.v1.worker.gpu_model_runner:GPUModelRunner."
V2 = "vllm.v1.worker.gpu."

TARGETS = (
    Target(V1 + "_determine_batch_execution_and_padding", "dispatch", None, hooks=determine_hooks,
           roles=WORKER, note="mode, descriptor, padding and the eager reason of the coming forward"),
    Target(V1 + "_model_forward", "forward", TIMELINE, hooks=model_forward_hooks, roles=WORKER,
           note="one timeline row per serving forward; usage row when it replayed"),
    Target("vllm.compilation.cuda_graph:CUDAGraphWrapper.__call__", "graph_call", None,
           hooks=wrapper_call_hooks, roles=WORKER,
           note="capture vs replay, first piece only (debug_log_enable)"),
    Target("vllm.compilation.breakable_cudagraph:BreakableCUDAGraphWrapper._capture", "capture", None,
           hooks=breakable_capture_hooks, roles=WORKER),
    Target("vllm.compilation.breakable_cudagraph:BreakableCUDAGraphWrapper._replay", "replay", None,
           hooks=breakable_replay_hooks, roles=WORKER),
    Target(V2 + "dp_utils:dispatch_cg_and_sync_dp", "dispatch", None, hooks=v2_dispatch_hooks,
           rebind=True, roles=WORKER, note="V2 decision (imported by name into the model runner)"),
    Target(V2 + "cudagraph_utils:CudaGraphManager.run_fullgraph", "replay", None,
           hooks=v2_run_fullgraph_hooks, roles=WORKER, note="V2 FULL replay (bypasses CUDAGraphWrapper)"),
    Target(V2 + "cudagraph_utils:CudaGraphManager.capture", "capture", None,
           hooks=v2_capture_hooks, roles=WORKER,
           note="V2 FULL captures (model and drafter managers): descriptors added to self.graphs"),
    Target(V2 + "model_runner:GPUModelRunner.execute_model", "forward", None,
           hooks=v2_execute_model_hooks, roles=WORKER, note="V2 timeline row per forward"),
)  # fmt: skip
