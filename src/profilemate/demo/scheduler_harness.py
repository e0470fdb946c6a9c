"""vLLM's real ``Scheduler`` driven directly, without a model: the way vLLM's own scheduler tests
do it (a ``VllmConfig`` for a local tiny model, a ``KVCacheConfig`` with one full-attention group,
requests made by hand, synthetic ``ModelRunnerOutput``s that sample one token per request).

Used by ``bench/bench_scheduler.py`` (what the engine-side probes add to ``schedule`` +
``update_from_output`` at batch 8 / 64 / 256) and by unit tests that check probe rows against the
scheduler's own state. Nothing here is a stand-in: every scheduling, KV-cache and prefix-cache
decision is vLLM's.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field


@dataclass
class Harness:
    scheduler: object
    block_size: int
    vocab: int = 200
    eos: int = 1_000_000  # never sampled: requests end at max_tokens
    _ids: itertools.count = field(default_factory=itertools.count)
    _hasher: object = None

    def add_requests(
        self, n: int, prompt_len: int, max_tokens: int, shared_prefix: int = 0, seed: int = 0
    ) -> list[str]:
        """``n`` requests of ``prompt_len`` tokens (the first ``shared_prefix`` shared)."""
        import random

        from vllm.sampling_params import SamplingParams
        from vllm.v1.request import Request

        rng = random.Random(seed)
        prefix = [rng.randrange(10, self.vocab) for _ in range(shared_prefix)]
        ids = []
        for _ in range(n):
            rid = f"req-{next(self._ids)}"
            tokens = prefix + [
                rng.randrange(10, self.vocab) for _ in range(prompt_len - len(prefix))
            ]
            params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
            req = Request(
                rid,
                tokens,
                params,
                None,
                arrival_time=time.time(),
                block_hasher=self._hasher,
            )
            self.scheduler.add_request(req)
            ids.append(rid)
        return ids

    def step(self):
        """One engine step: ``schedule()`` then ``update_from_output()`` with one sampled token for
        every request that completed its prompt. Returns (scheduler_output, engine_core_outputs)."""
        from vllm.v1.outputs import ModelRunnerOutput

        so = self.scheduler.schedule()
        req_ids = list(so.num_scheduled_tokens)
        sampled = []
        reqs = self.scheduler.requests
        for rid in req_ids:
            r = reqs.get(rid)
            # schedule() has already advanced num_computed_tokens by this step's tokens.
            done_prompt = r is not None and r.num_computed_tokens >= r.num_tokens
            sampled.append([11 + len(sampled) % 50] if done_prompt else [])
        out = ModelRunnerOutput(
            req_ids=req_ids,
            req_id_to_index={rid: i for i, rid in enumerate(req_ids)},
            sampled_token_ids=sampled,
            logprobs=None,
            prompt_logprobs_dict={},
            pooler_output=[],
        )
        return so, self.scheduler.update_from_output(so, out)

    def run_until_idle(self, max_steps: int = 100_000) -> int:
        steps = 0
        while self.scheduler.has_requests() and steps < max_steps:
            self.step()
            steps += 1
        return steps


def make_harness(
    *,
    max_num_seqs: int = 256,
    max_num_batched_tokens: int = 8192,
    num_blocks: int = 10_000,
    block_size: int = 16,
    max_model_len: int = 2048,
    prefix_caching: bool = True,
    log_stats: bool = False,
    model: str = "dense",
) -> Harness:
    """A real vLLM ``Scheduler`` for the tiny model ``model`` (generated locally if needed)."""
    import torch
    from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.utils.hashing import sha256
    from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.structured_output import StructuredOutputManager

    from profilemate.demo.models import ensure_model

    model_config = ModelConfig(model=str(ensure_model(model)), dtype="float32", seed=0)
    scheduler_config = SchedulerConfig(
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        max_model_len=max_model_len,
        is_encoder_decoder=False,
    )
    cache_config = CacheConfig(
        block_size=block_size, cache_dtype="auto", enable_prefix_caching=prefix_caching
    )
    cache_config.num_gpu_blocks = num_blocks
    vllm_config = VllmConfig(
        scheduler_config=scheduler_config, model_config=model_config, cache_config=cache_config
    )
    kv_cache_config = KVCacheConfig(
        num_blocks=num_blocks,
        kv_cache_tensors=[],
        kv_cache_groups=[
            KVCacheGroupSpec(
                ["layer"],
                FullAttentionSpec(
                    block_size=block_size, num_kv_heads=1, head_size=32, dtype=torch.float32
                ),
            )
        ],
    )
    scheduler = Scheduler(
        vllm_config=vllm_config,
        kv_cache_config=kv_cache_config,
        structured_output_manager=StructuredOutputManager(vllm_config),
        block_size=block_size,
        log_stats=log_stats,
    )
    init_none_hash(sha256)
    h = Harness(scheduler, block_size)
    h._hasher = get_request_block_hasher(block_size, sha256)
    return h
