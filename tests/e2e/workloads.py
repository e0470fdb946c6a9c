"""The standard workloads the end-to-end tests share (kept few: each costs a vLLM start-up)."""

DENSE = ("--model", "dense", "--num-prompts", "32", "--max-tokens", "16")
MOE = ("--model", "moe", "--num-prompts", "32", "--max-tokens", "16")
# 32 requests x ~215 tokens need ~7000 KV slots; 1 MiB holds 1024 tokens of the dense model
# (2 layers x K,V x 2 heads x 32 x fp32 = 1 KiB per token), so the scheduler must preempt.
PREEMPT = ("--model", "dense", "--num-prompts", "32", "--max-tokens", "200", "--kv-cache-mb", "1")
# Encoder-decoder: the tiny Whisper, one synthetic 16 kHz clip per request.
WHISPER = ("--model", "whisper", "--num-prompts", "8", "--max-tokens", "16")
