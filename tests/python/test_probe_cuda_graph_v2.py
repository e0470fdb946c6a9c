"""The cuda_graphs probe against vLLM's REAL V2 model-runner graph classes (vLLM 0.32.0, CPU build):
``vllm.v1.worker.gpu.cudagraph_utils.CudaGraphManager`` and ``dp_utils.dispatch_cg_and_sync_dp``.

Real: ``CudaGraphManager`` built by its own ``__init__`` (candidate descriptors from a real
``VllmConfig``; it reads ``get_pp_group()``, so vLLM's distributed groups are initialised for one
rank on gloo, as a single-process vLLM does), its ``capture`` loop (PIECEWISE then FULL, warm-up,
``graph_capture(device)`` with vLLM's group coordinators, ``capture_pool``, ``self.graphs``,
``compilation_counter``), ``dispatch``, ``run_fullgraph``, ``dispatch_cg_and_sync_dp`` called
through the model runner module's own binding, ``BatchExecutionDescriptor`` and
``make_cudagraph_stats`` (vLLM's ``CUDAGraphStat`` of a forward); the probe's targets applied by the
real ``Registry``, recorded by a live core session, read back from the CSVs.

FAKED, only the CUDA calls the CPU build cannot make: ``torch.cuda.CUDAGraph`` (its ``replay()``
counts), ``torch.cuda.graph`` (the capture context), ``torch.cuda.Stream`` /
``torch.cuda.current_stream`` / ``torch.cuda.stream`` (the capture stream) and the platform's graph
pool handle. In the tests through the probe, the platform's answer to "static graphs?" is a GPU's
(True; the CpuPlatform says False and every forward would be "platform without static graphs").
STAND-INS: the model runner is ``GPUModelRunner.__new__`` with a manager, and its ``execute_model``
body is replaced by the part of vLLM's (``v1/worker/gpu/model_runner.py: execute_model``) that
decides and runs the graph -- ``dispatch_cg_and_sync_dp`` then ``run_fullgraph`` for FULL -- since
the real one needs a loaded model, KV cache and attention metadata; the forwards' ``create_forward_fn``
is a stand-in for ``ModelCudaGraphManager.capture``'s (which needs the model and its buffers).
Data parallelism (``dp_size > 1``) needs collectives across ranks and is not driven here.
"""

from __future__ import annotations

import contextlib
import os

import pytest

vllm = pytest.importorskip("vllm")

import torch  # noqa: E402
import vllm.v1.worker.gpu.model_runner as v2_runner  # noqa: E402 (imported before the fakes)
from test_core_readers import read_csv  # noqa: E402
from test_registry import Core  # noqa: E402
from vllm.compilation.counter import compilation_counter  # noqa: E402
from vllm.config import CUDAGraphMode, VllmConfig, set_current_vllm_config  # noqa: E402
from vllm.platforms import current_platform  # noqa: E402
from vllm.v1.worker.gpu import dp_utils  # noqa: E402
from vllm.v1.worker.gpu.cudagraph_utils import (  # noqa: E402
    CudaGraphManager,
    make_cudagraph_stats,
)

from profilemate import _core  # noqa: E402
from profilemate.hooks.watchdog import ModuleWatchdog  # noqa: E402
from profilemate.probes import load_category  # noqa: E402
from profilemate.probes.registry import APPLIED, Registry  # noqa: E402

CG = load_category("cuda_graphs")
FULL, PIECEWISE, NONE = CUDAGraphMode.FULL, CUDAGraphMode.PIECEWISE, CUDAGraphMode.NONE
SIZES = (1, 2, 4, 8)


class FakeCUDAGraph:
    """FAKE of torch.cuda.CUDAGraph: no device; counts replays."""

    def __init__(self) -> None:
        self.replays = 0

    def replay(self) -> None:
        self.replays += 1


class FakeStream:
    """FAKE of torch.cuda.Stream."""

    def wait_stream(self, other) -> None:
        pass


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """vLLM's distributed groups for one rank (gloo), as CudaGraphManager.__init__ needs them."""
    from vllm.distributed import parallel_state as ps

    vc = VllmConfig()
    with set_current_vllm_config(vc):
        init = f"file://{tmp_path_factory.mktemp('dist') / 'init'}"
        ps.init_distributed_environment(1, 0, init, 0, "gloo")
        ps.ensure_model_parallel_initialized(1, 1)
        try:
            yield
        finally:
            ps.destroy_model_parallel()
            ps.destroy_distributed_environment()


@pytest.fixture
def fakes(dist, monkeypatch):
    stream = FakeStream()
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeCUDAGraph)
    monkeypatch.setattr(
        torch.cuda, "graph", lambda g, pool=None, stream=None: contextlib.nullcontext()
    )
    monkeypatch.setattr(torch.cuda, "Stream", lambda *a, **k: FakeStream())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a, **k: stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(type(current_platform), "_global_graph_pool", ("fake-pool", 0))


def manager(mode=CUDAGraphMode.FULL_AND_PIECEWISE, sizes=SIZES, max_num_seqs=8):
    vc = VllmConfig()
    vc.scheduler_config.max_num_seqs = max_num_seqs
    cc = vc.compilation_config
    cc.cudagraph_capture_sizes = list(sizes)
    cc.max_cudagraph_capture_size = max(sizes)
    return CudaGraphManager(vc, torch.device("cpu"), mode, decode_query_len=1)


def create_forward_fn(desc, warmup):
    """STAND-IN for ModelCudaGraphManager.capture's factory: the forward does nothing."""
    return lambda cg_mode: None


def capture(m) -> None:
    with contextlib.redirect_stderr(open(os.devnull, "w")):  # noqa: SIM115 (vLLM's tqdm bar)
        m.capture(create_forward_fn)


def dispatch(m, num_reqs, num_tokens, uniform=None, max_query_len=None, need_eager=False):
    """The real V2 decision, as execute_model asks for it (one DP rank)."""
    desc, sync = dp_utils.dispatch_cg_and_sync_dp(
        m, num_reqs, num_tokens, uniform, 1, 0, max_query_len=max_query_len,
        need_eager=need_eager,
    )  # fmt: skip
    assert sync is None
    return desc


def reason(m, num_reqs, num_tokens, uniform=None, max_query_len=None, need_eager=False):
    desc = dispatch(m, num_reqs, num_tokens, uniform, max_query_len, need_eager)
    why = CG.eager_reason_v2(
        m, num_reqs, num_tokens, desc.cg_mode, uniform_token_count=uniform,
        max_query_len=max_query_len, need_eager=need_eager, static_graphs=True,
    )  # fmt: skip
    return desc, why


# --- the eager reason, against the real manager's decision ---------------------------------------


def test_v2_reasons_follow_the_real_dispatch(fakes):
    m = manager()
    desc, why = reason(m, 3, 3, uniform=1, max_query_len=1)
    assert desc.cg_mode == NONE and why == CG.V2_NOT_CAPTURED  # before capture
    capture(m)
    desc, why = reason(m, 3, 3, uniform=1, max_query_len=1)
    assert (desc.cg_mode, desc.num_tokens, desc.num_reqs, why) == (FULL, 4, 4, "")
    desc, why = reason(m, 2, 5)  # a prefill: the PIECEWISE graph of 8 tokens
    assert (desc.cg_mode, desc.num_tokens, why) == (PIECEWISE, 8, "")
    desc, why = reason(m, 3, 3, uniform=1, max_query_len=1, need_eager=True)
    assert desc.cg_mode == NONE and why == CG.V2_NEED_EAGER
    desc, why = reason(m, 3, 9)
    assert desc.cg_mode == NONE and why == CG.ABOVE_MAX
    desc, why = reason(m, 0, 0)
    assert desc.cg_mode == NONE and why == CG.V2_ZERO


def test_v2_mode_none_and_no_compatible_graph(fakes):
    m = manager(CUDAGraphMode.NONE)
    capture(m)  # nothing to capture: vLLM's capture_model skips it (needs_capture() is False)
    assert not m.needs_capture() and not m.graphs
    desc, why = reason(m, 3, 3, uniform=1, max_query_len=1)
    assert desc.cg_mode == NONE and why == CG.MODE_NONE
    # FULL_DECODE_ONLY: decode batches have a graph, a prefill of the same size has none.
    m = manager(CUDAGraphMode.FULL_DECODE_ONLY)
    capture(m)
    assert dispatch(m, 4, 4, uniform=1, max_query_len=1).cg_mode == FULL
    desc, why = reason(m, 2, 4)
    assert desc.cg_mode == NONE and why == CG.NO_GRAPH


def test_v2_cpu_platform_reason_comes_first(fakes):
    m = manager()
    capture(m)
    desc = dispatch(m, 3, 9)
    assert CG.eager_reason_v2(m, 3, 9, desc.cg_mode) == CG.NO_STATIC_GRAPHS  # the CpuPlatform's


# --- through the probe: captures, replays, the timeline --------------------------------------------


def _execute_model(self, scheduler_output, intermediate_tensors=None, dummy_run=False,
                   is_profile=False):  # fmt: skip
    """STAND-IN body of V2 GPUModelRunner.execute_model: its graph decision and FULL replay."""
    num_reqs, num_toks, uniform, max_query_len = scheduler_output
    batch_desc, _ = v2_runner.dispatch_cg_and_sync_dp(  # the runner module's own binding
        self.cudagraph_manager, num_reqs, num_toks, uniform, 1, 0, max_query_len=max_query_len,
        need_eager=is_profile,
    )  # fmt: skip
    self.stats.append(make_cudagraph_stats(batch_desc, num_toks))  # vLLM's CUDAGraphStat
    if batch_desc.cg_mode == FULL:
        self.cudagraph_manager.run_fullgraph(batch_desc)
    return batch_desc


@pytest.fixture
def probe(fakes, tmp_path, monkeypatch):
    monkeypatch.setattr(v2_runner.GPUModelRunner, "execute_model", _execute_model)
    monkeypatch.setattr(CG, "_static_graphs", [True])  # a GPU platform's answer (see above)
    core = Core(tmp_path / "session")
    wd = ModuleWatchdog()
    wd.install()
    targets = [t for t in CG.TARGETS if t.site.module.startswith("vllm.v1.worker.gpu.")]
    assert len(targets) == 4
    reg = Registry(targets, core.recorder, watchdog=wd, vllm_version=vllm.__version__)
    reg.activate()
    try:
        assert [r["state"] for r in reg.status()] == [APPLIED] * 4
        runner = v2_runner.GPUModelRunner.__new__(v2_runner.GPUModelRunner)
        runner.cudagraph_manager = manager()
        runner.stats = []
        yield runner, core
    finally:
        reg.deactivate()
        wd.uninstall()
        _core.stop()


def _csv(core, name) -> list[dict]:
    _core.flush()
    path = os.path.join(core.dir, f"{name}.csv")
    if not os.path.exists(path):
        return []
    header, rows = read_csv(path)
    return [dict(zip(header, r, strict=True)) for r in rows]


def _num(v):
    return None if v in ("", "nan") else int(float(v))


def test_v2_captures_replays_and_timeline_equal_vllms(probe):
    runner, core = probe
    m = runner.cudagraph_manager
    counted = compilation_counter.num_cudagraph_captured
    capture(m)
    # Captures: one row per FULL graph the real manager holds (PIECEWISE graphs are captured by
    # CUDAGraphWrapper inside the forward), as many as vLLM's own counter says.
    caps = _csv(core, "cuda_graph_captures")
    keys = sorted((r["runtime_mode"], _num(r["num_tokens"]), _num(r["num_reqs"]),
                   _num(r["uniform"]), r["source"]) for r in caps)  # fmt: skip
    assert keys == sorted(
        (d.cg_mode.name, d.num_tokens, d.num_reqs, 1, "CudaGraphManager") for d in m.graphs
    )
    assert len(caps) == len(m.graphs) == compilation_counter.num_cudagraph_captured - counted == 4

    plan = [  # (num_reqs, tokens, uniform_token_count, max_query_len), is_profile
        ((3, 3, 1, 1), False),  # decode -> FULL 4 (padded)
        ((3, 3, 1, 1), False),
        ((1, 1, 1, 1), False),  # decode -> FULL 1
        ((2, 5, None, None), False),  # prefill -> PIECEWISE 8
        ((3, 9, None, None), False),  # above the largest capture size -> eager
        ((3, 3, 1, 1), True),  # profile run -> eager (need_eager)
        ((4, 4, 1, 1), False),  # decode -> FULL 4, no padding
    ]
    descs = [runner.execute_model(so, is_profile=prof) for so, prof in plan]
    runner.execute_model((2, 2, 1, 1), dummy_run=True)  # a dummy run: no timeline row
    assert len(runner.stats) == len(plan) + 1

    rows = _csv(core, "cuda_graph_timeline")
    assert len(rows) == len(plan)
    want_reason = ["", "", "", "", CG.ABOVE_MAX, CG.V2_NEED_EAGER, ""]
    want_action = ["replay", "replay", "replay", "", "eager", "eager", "replay"]
    for r, (so, _), desc, stat, why, action in zip(
        rows, plan, descs, runner.stats, want_reason, want_action, strict=False
    ):
        # == vLLM's CUDAGraphStat of the forward (unpadded, padded, mode).
        assert r["runtime_mode"] == desc.cg_mode.name and stat.runtime_mode == str(desc.cg_mode)
        assert _num(r["num_tokens"]) == stat.num_unpadded_tokens == so[1]
        assert _num(r["num_padded_tokens"]) == stat.num_padded_tokens == desc.num_tokens
        assert _num(r["num_reqs"]) == so[0]
        assert _num(r["descriptor_num_reqs"]) == desc.num_reqs
        assert _num(r["uniform"]) == (desc.uniform_token_count is not None)
        assert (r["eager_reason"], r["graph_action"]) == (why, action)
    assert [r["runtime_mode"] for r in rows] == [
        "FULL", "FULL", "FULL", "PIECEWISE", "NONE", "NONE", "FULL"
    ]  # fmt: skip

    # Replays: the usage rows' last count per descriptor == the fake graphs' replays.
    usage = _csv(core, "cuda_graph_usage")
    recorded: dict = {}
    for r in usage:
        recorded[(_num(r["num_tokens"]), _num(r["num_reqs"]))] = _num(r["replay_count"])
    real = {(d.num_tokens, d.num_reqs): g.replays for d, g in m.graphs.items() if g.replays}
    # The dummy run replayed its graph too (vLLM does); it is not a serving forward: no row.
    assert real.pop((2, 2)) == 1
    assert recorded == real == {(4, 4): 3, (1, 1): 1}
    assert len(usage) == 4 and all(r["runtime_mode"] == "FULL" for r in usage)
