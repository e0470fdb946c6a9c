"""The capture / replay / pass-through records of the cuda_graphs probe against vLLM's REAL
``vllm.compilation.cuda_graph.CUDAGraphWrapper`` (vLLM 0.32.0, CPU build).

Real: the wrapper class and its ``__call__`` (every decision: pass-through, capture, replay), the
``VllmConfig`` / ``CompilationConfig``, ``set_forward_context`` with real ``BatchDescriptor``s,
``compilation_counter``, the piecewise layout of ``compilation/backends.py``'s
``wrap_with_cudagraph_if_needed`` (``CUDAGraphOptions(debug_log_enable=is_first_graph,
gc_disable=not is_first_graph, weak_ref_output=is_last_graph)``), the probe's hooks applied by the
real ``Registry`` and recorded by a live core session (the CSV is read back).

FAKED, only the CUDA calls the CPU build cannot make: ``torch.cuda.CUDAGraph`` (a recorder whose
``replay()`` counts), ``torch.cuda.graph`` (a no-op context manager) and the platform's graph pool
handle (``torch.cuda.graph_pool_handle()``, cached by vLLM in ``Platform._global_graph_pool``). The
runnables return a tuple of Python ints, which vLLM's ``weak_ref_tensors`` passes through without
its CUDA op.

What is checked: the probe's captures (CSV rows) are exactly the entries the wrappers created
(``concrete_cudagraph_entries``), its replays per descriptor are exactly the fake graphs' replay
counts, one record per forward however many piecewise wrappers run, nothing on NONE or on a mode
that is not the wrapper's, and vLLM's runnable runs exactly once per forward.

V2's ``CudaGraphManager`` and ``dispatch_cg_and_sync_dp`` are driven in test_probe_cuda_graph_v2.py.
"""

from __future__ import annotations

import contextlib
import os

import pytest

vllm = pytest.importorskip("vllm")

import torch  # noqa: E402
from test_core_readers import read_csv  # noqa: E402
from test_registry import Core  # noqa: E402
from vllm.compilation.counter import compilation_counter  # noqa: E402
from vllm.compilation.cuda_graph import CUDAGraphOptions, CUDAGraphWrapper  # noqa: E402
from vllm.config import CUDAGraphMode, VllmConfig  # noqa: E402
from vllm.config.compilation import CompilationMode  # noqa: E402
from vllm.forward_context import BatchDescriptor, set_forward_context  # noqa: E402
from vllm.platforms import current_platform  # noqa: E402

from profilemate import _core  # noqa: E402
from profilemate.hooks.watchdog import ModuleWatchdog  # noqa: E402
from profilemate.probes import load_category  # noqa: E402
from profilemate.probes.registry import APPLIED, Registry  # noqa: E402

CG = load_category("cuda_graphs")
FULL, PIECEWISE, NONE = CUDAGraphMode.FULL, CUDAGraphMode.PIECEWISE, CUDAGraphMode.NONE


class FakeCUDAGraph:
    """FAKE of torch.cuda.CUDAGraph: no device; counts replays."""

    made: list[FakeCUDAGraph] = []

    def __init__(self) -> None:
        self.replays = 0
        FakeCUDAGraph.made.append(self)

    def replay(self) -> None:
        self.replays += 1


@contextlib.contextmanager
def fake_cuda_graph_capture(graph, pool=None, stream=None):
    """FAKE of torch.cuda.graph (the capture context): the runnable just runs inside it."""
    assert isinstance(graph, FakeCUDAGraph)
    yield


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeCUDAGraph)
    monkeypatch.setattr(torch.cuda, "graph", fake_cuda_graph_capture)
    monkeypatch.setattr(type(current_platform), "_global_graph_pool", ("fake-pool", 0))
    FakeCUDAGraph.made = []
    vc = VllmConfig()
    cc = vc.compilation_config
    cc.mode = CompilationMode.VLLM_COMPILE
    cc.cudagraph_mode = CUDAGraphMode.FULL_AND_PIECEWISE  # the CPU platform forced NONE at init
    assert not vc.use_cumem_cudagraph_pool
    core = Core(tmp_path / "session")
    wd = ModuleWatchdog()
    wd.install()
    target = next(t for t in CG.TARGETS if t.site.qualname == "CUDAGraphWrapper.__call__")
    reg = Registry([target], core.recorder, watchdog=wd, vllm_version=vllm.__version__)
    reg.activate()
    try:
        assert [r["state"] for r in reg.status()] == [APPLIED]
        yield vc, core
    finally:
        reg.deactivate()
        wd.uninstall()
        _core.stop()


def _captures(core) -> list[dict]:
    _core.flush()
    path = os.path.join(core.dir, "cuda_graph_captures.csv")
    if not os.path.exists(path):
        return []
    header, rows = read_csv(path)
    return [dict(zip(header, r, strict=True)) for r in rows]


class Forwards:
    """Runs forwards through a top-level wrapper and keeps what the probe said for each."""

    def __init__(self, vc, model) -> None:
        self.vc, self.model = vc, model
        self.actions: list[tuple[str, BatchDescriptor | None, str]] = []
        self.runs = 0

    def __call__(self, mode: CUDAGraphMode, desc: BatchDescriptor) -> None:
        CG._state.action = ""  # what the dispatch hook does before every forward
        with set_forward_context(
            None, self.vc, num_tokens=desc.num_tokens, cudagraph_runtime_mode=mode,
            batch_descriptor=desc,
        ):  # fmt: skip
            out = self.model(torch.zeros(desc.num_tokens))
        assert isinstance(out, tuple)
        self.actions.append((mode.name, desc, CG._state.action))


def _replays_recorded(fw: Forwards) -> dict:
    out: dict = {}
    for mode, desc, action in fw.actions:
        if action == "replay":
            out[(mode, desc)] = out.get((mode, desc), 0) + 1
    return out


def _capture_keys(rows) -> list[tuple]:
    return [
        (r["runtime_mode"], int(float(r["num_tokens"])),
         None if r["num_reqs"] in ("", "nan") else int(float(r["num_reqs"])),
         int(float(r["uniform"])), r["source"])
        for r in rows
    ]  # fmt: skip


def _entry_keys(mode: str, wrapper) -> list[tuple]:
    return [
        (mode, d.num_tokens, d.num_reqs, int(d.uniform), "CUDAGraphWrapper")
        for d, e in wrapper.concrete_cudagraph_entries.items()
        if e.cudagraph is not None
    ]


def test_full_wrapper_capture_replay_pass_through(env):
    vc, core = env
    calls = []

    def model(x):
        calls.append(x.shape[0])
        return (len(calls),)

    w = CUDAGraphWrapper(model, vc, runtime_mode=FULL)
    fw = Forwards(vc, w)
    d4 = BatchDescriptor(num_tokens=4, num_reqs=4, uniform=True)
    d8 = BatchDescriptor(num_tokens=8, num_reqs=8, uniform=True)
    counted = compilation_counter.num_cudagraph_captured
    plan = [(FULL, d4), (FULL, d4), (FULL, d8), (FULL, d4), (NONE, BatchDescriptor(num_tokens=5)),
            (PIECEWISE, BatchDescriptor(num_tokens=8)), (FULL, d8), (FULL, d4)]  # fmt: skip
    for mode, desc in plan:
        fw(mode, desc)

    # vLLM's runnable ran for the captures and the pass-throughs only (replays run the graph).
    assert len(calls) == 2 + 2
    assert [a for _, _, a in fw.actions] == [
        "capture", "replay", "capture", "replay", "", "", "replay", "replay"
    ]  # fmt: skip
    # Captures == the entries the real wrapper made (and vLLM's own counter).
    rows = _captures(core)
    assert sorted(_capture_keys(rows)) == sorted(_entry_keys("FULL", w))
    assert len(rows) == compilation_counter.num_cudagraph_captured - counted == 2
    assert all(float(r["capture_time_ms"]) >= 0 for r in rows)
    # Replays per descriptor == what the fake graphs were asked to replay.
    real = {("FULL", d): e.cudagraph.replays for d, e in w.concrete_cudagraph_entries.items()}
    assert _replays_recorded(fw) == real == {("FULL", d4): 3, ("FULL", d8): 1}


def test_piecewise_pieces_give_one_record_per_forward_and_nest_in_full(env):
    """FULL_AND_PIECEWISE as vLLM builds it: a FULL wrapper around the model (gpu_model_runner)
    and one PIECEWISE wrapper per compiled piece inside it (backends.py)."""
    vc, core = env
    n_pieces = 3
    piece_calls = [0] * n_pieces

    def piece_fn(i):
        def run(x):
            piece_calls[i] += 1
            return (i,)

        return run

    pieces = [
        CUDAGraphWrapper(
            piece_fn(i), vc, runtime_mode=PIECEWISE,
            cudagraph_options=CUDAGraphOptions(
                debug_log_enable=i == 0, gc_disable=i != 0, weak_ref_output=i == n_pieces - 1
            ),
        )
        for i in range(n_pieces)
    ]  # fmt: skip

    def split_model(x):  # what the compiled split graph does: the pieces in turn
        out = None
        for p in pieces:
            out = p(x)
        return out

    full = CUDAGraphWrapper(split_model, vc, runtime_mode=FULL)
    fw = Forwards(vc, full)
    p16 = BatchDescriptor(num_tokens=16)
    p32 = BatchDescriptor(num_tokens=32)
    f4 = BatchDescriptor(num_tokens=4, num_reqs=4, uniform=True)
    counted = compilation_counter.num_cudagraph_captured
    plan = [(PIECEWISE, p16), (PIECEWISE, p16), (PIECEWISE, p32), (FULL, f4), (FULL, f4),
            (NONE, BatchDescriptor(num_tokens=7)), (PIECEWISE, p32), (PIECEWISE, p16)]  # fmt: skip
    for mode, desc in plan:
        fw(mode, desc)

    # One record per forward: the FULL capture is FULL's (the PIECEWISE wrappers inside it pass
    # through and must not close it), a piecewise forward is recorded once, not once per piece.
    assert [a for _, _, a in fw.actions] == [
        "capture", "replay", "capture", "capture", "replay", "", "replay", "replay"
    ]  # fmt: skip
    rows = _captures(core)
    assert _capture_keys(rows) == [
        ("PIECEWISE", 16, None, 0, "CUDAGraphWrapper"),
        ("PIECEWISE", 32, None, 0, "CUDAGraphWrapper"),
        ("FULL", 4, 4, 1, "CUDAGraphWrapper"),
    ]
    # vLLM really captured one graph per piece and per descriptor, and the FULL graph once.
    assert sorted(_entry_keys("PIECEWISE", pieces[0])) == sorted(_capture_keys(rows)[:2])
    for p in pieces[1:]:
        assert set(p.concrete_cudagraph_entries) == {p16, p32}
    assert list(full.concrete_cudagraph_entries) == [f4]
    assert compilation_counter.num_cudagraph_captured - counted == 2 * n_pieces + 1
    # Replays: every piece replayed its graph once per piecewise replay forward; recorded once.
    for p in pieces:
        assert {d: e.cudagraph.replays for d, e in p.concrete_cudagraph_entries.items()} == {
            p16: 2,
            p32: 1,
        }
    assert full.concrete_cudagraph_entries[f4].cudagraph.replays == 1
    assert _replays_recorded(fw) == {("PIECEWISE", p16): 2, ("PIECEWISE", p32): 1, ("FULL", f4): 1}
    # The pieces ran (eagerly or under capture) for the captures, the FULL capture and NONE only.
    assert piece_calls == [2 + 1 + 1] * n_pieces


def test_no_forward_context_passes_through_unrecorded(env):
    vc, core = env
    w = CUDAGraphWrapper(lambda x: (1,), vc, runtime_mode=FULL)
    CG._state.action = ""
    assert w(torch.zeros(2)) == (1,)  # vLLM: no forward context -> the runnable directly
    assert CG._state.action == "" and _captures(core) == [] and not w.concrete_cudagraph_entries


def test_a_capture_that_raises_leaves_no_record(env, monkeypatch):
    """vLLM refuses a capture outside its capture phase (validate_cudagraph_capturing_enabled)."""
    from vllm.compilation import monitor

    vc, core = env
    w = CUDAGraphWrapper(lambda x: (1,), vc, runtime_mode=FULL)
    fw = Forwards(vc, w)
    monkeypatch.setattr(monitor, "cudagraph_capturing_enabled", False)
    with pytest.raises(RuntimeError, match="CUDA graph capturing"):
        fw(FULL, BatchDescriptor(num_tokens=4))
    monkeypatch.setattr(monitor, "cudagraph_capturing_enabled", True)
    fw(NONE, BatchDescriptor(num_tokens=4))  # the same wrapper again: pass-through
    assert fw.actions[-1][2] == "" and _captures(core) == []
    fw(FULL, BatchDescriptor(num_tokens=4))
    assert fw.actions[-1][2] == "capture" and len(_captures(core)) == 1
