"""Smoke tests: the CPU build of vLLM really generates on the tiny models (no ProfileMate involved).

These are the ground the probe tests stand on: if vLLM produced nothing, they fail.
"""

import pytest

from .workloads import DENSE, MOE, PREEMPT, WHISPER

pytestmark = pytest.mark.vllm


def _check_generation(run, num_prompts: int, max_tokens: int) -> None:
    assert run.result["num_prompts"] == num_prompts
    assert len(run.requests) == num_prompts
    for r in run.requests:
        # ignore_eos=True: every request must produce exactly max_tokens real token ids.
        assert len(r["output_token_ids"]) == max_tokens, r
        assert r["finish_reason"] == "length"
        assert all(0 <= t < 512 for t in r["output_token_ids"])
    # vLLM's own accounting agrees with what came back.
    assert run.metrics["vllm:request_success"] == num_prompts
    assert run.metrics["vllm:generation_tokens"] == num_prompts * max_tokens
    assert run.metrics["vllm:prompt_tokens"] == sum(r["prompt_tokens"] for r in run.requests)


def test_dense_generates(vllm_run):
    run = vllm_run(*DENSE)
    _check_generation(run, 32, 16)
    assert run.result["vllm_version"] == "0.32.0"
    assert run.result["torch_version"].startswith("2.13.0")
    # Random weights still give varied tokens: a broken forward pass tends to emit one id.
    assert len({t for r in run.requests for t in r["output_token_ids"]}) > 5


def test_moe_generates(vllm_run):
    run = vllm_run(*MOE)
    _check_generation(run, 32, 16)


def test_small_kv_cache_forces_preemption(vllm_run):
    run = vllm_run(*PREEMPT)
    _check_generation(run, 32, 200)
    assert run.metrics["vllm:num_preemptions"] > 0
    # vLLM's per-request histogram of preemptions sums to the same total.
    assert run.metrics["vllm:request_num_preemptions:sum"] == run.metrics["vllm:num_preemptions"]


def test_whisper_encoder_decoder_generates(vllm_run):
    run = vllm_run(*WHISPER)
    assert run.result["encoder_decoder"] is True
    assert len(run.requests) == 8
    for r in run.requests:
        assert len(r["output_token_ids"]) == 16
        assert all(0 <= t < 640 for t in r["output_token_ids"])  # Whisper vocab incl. specials
    assert run.metrics["vllm:request_success"] == 8
    assert run.metrics["vllm:generation_tokens"] == 8 * 16
