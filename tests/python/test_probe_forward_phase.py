"""forward_timing's phase (prefill / decode / mixed) against vLLM's own split of a step into context
and generation requests (``v1/utils.py: compute_iteration_details``), on real ``SchedulerOutput``s
made by vLLM's real ``Scheduler`` (profilemate.demo.scheduler_harness): chunked prefills, new and
cached requests, steady decode. The probe counts the context requests with the core's
``count_zero`` (C++) instead of vLLM's per-request Python loop; both must agree every step."""

from __future__ import annotations

import pytest

vllm = pytest.importorskip("vllm")

from vllm.v1.utils import compute_iteration_details  # noqa: E402

from profilemate import _core  # noqa: E402
from profilemate.demo.scheduler_harness import make_harness  # noqa: E402
from profilemate.probes.categories import forward_timing as ft  # noqa: E402
from profilemate.probes.recorder import CoreRecorder  # noqa: E402
from profilemate.probes.spec import HookContext  # noqa: E402

pytestmark = pytest.mark.vllm


def _vllm_phase(so) -> str:
    d = compute_iteration_details(so)
    if d.num_ctx_requests == 0:
        return "decode"
    return "prefill" if d.num_generation_requests == 0 else "mixed"


def test_phase_and_context_count_equal_vllms_every_step(tmp_path):
    # A token budget below the prompts' total: chunked prefills, and requests added while others
    # decode, so the run goes through prefill, mixed and decode steps.
    h = make_harness(max_num_seqs=8, max_num_batched_tokens=48, num_blocks=256, max_model_len=256)
    h.add_requests(3, 40, 6)
    target = next(t for t in ft.TARGETS if t.key.endswith("GPUModelRunner.execute_model"))
    _core.start(str(tmp_path), "phase")
    try:
        before = ft.execute_model_hooks(HookContext(target, None, CoreRecorder(_core))).before
        seen = set()
        for i in range(40):
            if i == 6:
                h.add_requests(2, 30, 4)
            so, _ = h.step()
            if not so.num_scheduled_tokens:
                continue
            d = compute_iteration_details(so)
            for count_zero in (_core.count_zero, ft._list_count_zero):
                assert ft.context_count(so, count_zero) == d.num_ctx_requests
                phase, reqs, tokens = ft.phase_of(so, count_zero)
                assert phase == _vllm_phase(so)
                assert (reqs, tokens) == (
                    len(so.num_scheduled_tokens),
                    so.total_num_scheduled_tokens,
                )
            before(so)  # the V1 hook: (step, context requests, requests, tokens) for the forward
            _step, context, reqs, tokens = ft._pending[0]
            assert (context, reqs, tokens) == (
                d.num_ctx_requests,
                len(so.num_scheduled_tokens),
                so.total_num_scheduled_tokens,
            )
            assert ft.phase_name(context, reqs) == _vllm_phase(so)
            seen.add(_vllm_phase(so))
    finally:
        _core.stop()
    assert seen == {"prefill", "mixed", "decode"}
