"""The eager-reason classification against vLLM's REAL CudagraphDispatcher (vLLM 0.32.0, CPU build).

The dispatcher is plain Python; it is built from a real VllmConfig whose CompilationConfig is set to
a GPU-style graph configuration after construction (the CPU platform forces NONE at construction).
Nothing is faked: each case asks the real dispatcher for its decision, then checks that
``eager_reason_v1`` names the rule that produced it.
"""

from __future__ import annotations

import pytest

vllm = pytest.importorskip("vllm")

from vllm.config import CUDAGraphMode, VllmConfig  # noqa: E402
from vllm.config.compilation import CompilationMode  # noqa: E402
from vllm.v1.cudagraph_dispatcher import CudagraphDispatcher  # noqa: E402

from profilemate.probes.categories import cuda_graphs as cg  # noqa: E402


def _dispatcher(mode=CUDAGraphMode.FULL, sizes=(1, 2, 4, 8), init=True):
    vc = VllmConfig()
    cc = vc.compilation_config
    cc.mode = CompilationMode.VLLM_COMPILE
    cc.cudagraph_mode = mode
    cc.cudagraph_capture_sizes = list(sizes)
    cc.max_cudagraph_capture_size = max(sizes) if sizes else None
    d = CudagraphDispatcher(vc)
    if init:
        d.initialize_cudagraph_keys(mode, 1)
    return d


def _reason(d, n, **kw):
    dkw = {k: kw.pop(k) for k in ("uniform_decode", "has_lora", "num_active_loras") if k in kw}
    valid = {CUDAGraphMode.NONE} if kw.get("force_eager") else None
    invalid = {CUDAGraphMode.FULL} if kw.get("has_encoder_output") else None
    mode, _ = d.dispatch(n, valid_modes=valid, invalid_modes=invalid, **dkw)
    return mode, cg.eager_reason_v1(d, n, mode, static_graphs=True, **dkw, **kw)


def test_graph_hit_has_no_reason():
    mode, why = _reason(_dispatcher(), 3)
    assert mode == CUDAGraphMode.FULL and why == ""


def test_keys_not_initialised():
    mode, why = _reason(_dispatcher(init=False), 3)
    assert mode == CUDAGraphMode.NONE and why == cg.KEYS_NOT_INITIALIZED


def test_mode_none():
    mode, why = _reason(_dispatcher(CUDAGraphMode.NONE), 3)
    assert mode == CUDAGraphMode.NONE and why == cg.MODE_NONE


def test_above_largest_capture_size():
    mode, why = _reason(_dispatcher(), 9)
    assert mode == CUDAGraphMode.NONE and why == cg.ABOVE_MAX


def test_forced_eager_dummy_run():
    mode, why = _reason(_dispatcher(), 3, force_eager=True)
    assert mode == CUDAGraphMode.NONE and why == cg.FORCED_EAGER


def test_encoder_inputs_exclude_full():
    mode, why = _reason(_dispatcher(), 3, has_encoder_output=True)
    assert mode == CUDAGraphMode.NONE and why == cg.ENCODER_INPUTS


def test_mixed_batch_under_full_decode_only_has_no_graph():
    d = _dispatcher(CUDAGraphMode.FULL_DECODE_ONLY)
    assert d.dispatch(4, uniform_decode=True)[0] == CUDAGraphMode.FULL  # decode batches do
    mode, why = _reason(d, 4, uniform_decode=False)
    assert mode == CUDAGraphMode.NONE and why == cg.NO_GRAPH


def test_cpu_platform_reason_comes_first():
    # The installed platform is vLLM's CpuPlatform: support_static_graph_mode() is False.
    d = _dispatcher()
    mode, _ = d.dispatch(9)
    assert cg.eager_reason_v1(d, 9, mode) == cg.NO_STATIC_GRAPHS
