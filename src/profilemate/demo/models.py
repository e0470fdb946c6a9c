"""Generate tiny random-weight Hugging Face models that the CPU build of vLLM can serve.

Each model is a few layers wide enough for vLLM's CPU attention kernels (head size 32 is the
smallest the CPU backend supports in vLLM 0.32), saved with its tokenizer into
``<cache>/<name>-<fingerprint>/``. The fingerprint covers the config and this generator's version,
so a changed recipe makes a new folder instead of silently reusing a stale one; an existing,
complete folder is reused (idempotent, ~1 s when cached).

Usage: ``python -m profilemate.demo.models [--cache DIR] [NAME ...]`` prints ``name<TAB>path`` lines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

GENERATOR_VERSION = 1
SEED = 1234
VOCAB_SIZE = 512

# A small built-in corpus: the tokenizer only needs to round-trip English-like prompts.
_CORPUS = """
The quick brown fox jumps over the lazy dog. A profiler measures what a program really does.
vLLM schedules requests into batches, allocates blocks of key value cache, and runs the model.
Preemption happens when the cache is full and a running request must give its blocks back.
Mixture of experts models route every token to the top two experts of each layer.
Once upon a time there was a small model that generated random words very quickly.
Tell me about the weather, the mountains, the rivers, the cities and the people who live there.
Numbers: zero one two three four five six seven eight nine ten hundred thousand million.
""".strip()


def default_cache_dir() -> Path:
    """PROFILEMATE_MODEL_CACHE, else ~/.cache/profilemate/models (never inside the git tree)."""
    env = os.environ.get("PROFILEMATE_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "profilemate" / "models"


def _dense_config() -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "dtype": "float32",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }


def _moe_config() -> dict:
    # Qwen2-MoE style: 8 routed experts, top-2, no shared expert gate surprises.
    return {
        "architectures": ["Qwen2MoeForCausalLM"],
        "model_type": "qwen2_moe",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 128,
        "intermediate_size": 256,
        "moe_intermediate_size": 64,
        "shared_expert_intermediate_size": 128,
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "norm_topk_prob": False,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "use_sliding_window": False,
        "tie_word_embeddings": False,
        "dtype": "float32",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }


MODELS = {"dense": _dense_config, "moe": _moe_config}


def fingerprint(config: dict) -> str:
    blob = json.dumps({"v": GENERATOR_VERSION, "seed": SEED, "config": config}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _save_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0..3, matching the configs above
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    fast.model_max_length = 2048
    fast.save_pretrained(str(path))


def build_atomically(target: Path, name: str, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp)`` into a private folder, then rename it to ``target``.

    A concurrent builder or an interrupted run never leaves a half-written model folder behind;
    ``profilemate_model.json`` is the completeness marker ``ensure_*`` checks.
    """
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        (tmp / "profilemate_model.json").write_text(
            json.dumps({"name": name, "generator_version": GENERATOR_VERSION, "seed": SEED})
        )
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "profilemate_model.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _build(name: str, config: dict, target: Path) -> None:
    import torch
    import transformers

    def write(folder: Path) -> None:
        torch.manual_seed(SEED)
        hf_config = transformers.AutoConfig.for_model(**config)
        model = transformers.AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
        model.save_pretrained(str(folder), safe_serialization=True)
        _save_tokenizer(folder)

    build_atomically(target, name, write)


# Encoder-decoder models with their own generator (processor files, special tokens): demo/encdec.py.
ENCDEC_MODELS = ("whisper",)
ALL_MODELS = (*sorted(MODELS), *ENCDEC_MODELS)


def ensure_model(name: str, cache_dir: Path | None = None) -> Path:
    """Return the folder of tiny model `name`, generating it on first use."""
    if name == "whisper":
        from profilemate.demo.encdec import ensure_encdec

        return ensure_encdec(Path(cache_dir) if cache_dir else default_cache_dir())
    if name not in MODELS:
        raise ValueError(f"unknown tiny model {name!r}; choose one of {list(ALL_MODELS)}")
    config = MODELS[name]()
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    target = cache / f"{name}-{fingerprint(config)}"
    if not (target / "profilemate_model.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        _build(name, config, target)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="cache folder (default: %(default)s)")
    ap.add_argument("names", nargs="*", default=list(ALL_MODELS))
    args = ap.parse_args(argv)
    for name in args.names:
        print(f"{name}\t{ensure_model(name, args.cache)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
