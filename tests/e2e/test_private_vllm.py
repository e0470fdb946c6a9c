"""Real vLLM (CPU build) under `profilemate run`: no prompt and no generated text (nor the generated
token ids) reaches any file of the session (docs/OUTPUTS.md, "Private by default")."""

from __future__ import annotations

import pytest

from profilemate.demo.workload import make_prompts

from .workloads import DENSE

pytestmark = pytest.mark.vllm


def test_no_prompt_or_output_in_any_session_file(vllm_run, tiny_model_dir):
    run = vllm_run(*DENSE, profile=True)
    assert run.session_dir is not None, run.log[-4000:]
    files = sorted(p for p in run.session_dir.rglob("*") if p.is_file())
    assert len(files) >= 10, files  # metadata.json and every process's files
    blob = b"\n".join(p.read_bytes() for p in files)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir["dense"]))
    prompts = [p for p in make_prompts(len(run.requests)) if len(p.split()) >= 5]
    outputs = [tokenizer.decode(r["output_token_ids"]).strip() for r in run.requests]
    outputs = [o for o in outputs if len(o) >= 12]
    ids = [r["output_token_ids"] for r in run.requests]
    assert prompts and outputs and len(ids) == len(run.requests) == 32
    # The test would see them: the workload's texts are in its own result, not in the session.
    assert all(p.encode() not in blob for p in prompts), "a prompt is in the session"
    assert all(o.encode() not in blob for o in outputs), "a generated text is in the session"
    for seq in ids:
        for sep in (",", ", ", " "):
            assert sep.join(map(str, seq)).encode() not in blob, "generated token ids"
