"""Generate a tiny random-weight Whisper (encoder-decoder, audio) model that vLLM's CPU build serves.

Same recipe as :mod:`profilemate.demo.models`: fixed seed, random weights, a byte-level BPE
tokenizer trained on the built-in corpus, everything built locally (no hub access). On top of
the text tokenizer the folder carries Whisper's special tokens (``<|endoftext|>``,
``<|startoftranscript|>``, the language tokens ``<|en|>`` ..., ``<|transcribe|>``,
``<|notimestamps|>`` ...), which vLLM's Whisper prompt format needs, and a
``WhisperFeatureExtractor`` saved with the ``WhisperProcessor``.

Sizes: d_model 64, 2 heads (head_dim 32, the smallest the CPU attention backend takes), 2 encoder
and 2 decoder layers, 80 mel bins. The feature extractor's ``chunk_length`` is shortened from
Whisper's 30 s to ``CHUNK_SECONDS`` so the encoder sees ``CHUNK_SECONDS * 100`` mel frames and
emits ``max_source_positions = CHUNK_SECONDS * 50`` tokens per clip (vLLM reserves exactly
``max_source_positions`` encoder tokens for every audio item, so the two must agree). Audio must
be passed at 16 kHz mono (numpy float32) so vLLM needs no resampling library.

``build_encdec(target)`` writes the folder directly (atomically); ``ensure_encdec()`` caches it
under ``<cache>/whisper-<fingerprint>/`` like ``models.ensure_model``.

Usage: ``python -m profilemate.demo.encdec [--cache DIR]`` prints ``whisper<TAB>path``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from profilemate.demo.models import (
    _CORPUS,
    SEED,
    build_atomically,
    default_cache_dir,
    fingerprint,
)

BPE_VOCAB_SIZE = 512  # byte-level BPE part; Whisper's special tokens are appended after it
SAMPLING_RATE = 16000
HOP_LENGTH = 160
N_FFT = 400
NUM_MEL_BINS = 80
CHUNK_SECONDS = 2  # Whisper uses 30 s (3000 frames -> 1500 encoder tokens)
MAX_SOURCE_POSITIONS = CHUNK_SECONDS * SAMPLING_RATE // HOP_LENGTH // 2  # conv2 has stride 2
MAX_TARGET_POSITIONS = 448

# Whisper's language codes, in the order of the original multilingual vocabulary.
_LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no "
    "th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw "
    "gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl "
    "mg as tt haw ln ha ba jw su yue"
).split()


def _special_tokens() -> list[str]:
    return (
        ["<|endoftext|>", "<|startoftranscript|>"]
        + [f"<|{code}|>" for code in _LANGUAGES]
        + [
            "<|translate|>",
            "<|transcribe|>",
            "<|startoflm|>",
            "<|startofprev|>",
            "<|nospeech|>",
            "<|notimestamps|>",
        ]
    )


def _token_ids() -> dict[str, int]:
    """Ids of the special tokens: they follow the BPE vocabulary, as in the real Whisper."""
    return {tok: BPE_VOCAB_SIZE + i for i, tok in enumerate(_special_tokens())}


def whisper_config() -> dict:
    ids = _token_ids()
    n_vocab = BPE_VOCAB_SIZE + len(ids)
    vocab_size = (n_vocab + 63) // 64 * 64  # a few unused rows, like padded real vocabularies
    eot, sot, nots = ids["<|endoftext|>"], ids["<|startoftranscript|>"], ids["<|notimestamps|>"]
    return {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "vocab_size": vocab_size,
        "num_mel_bins": NUM_MEL_BINS,
        "d_model": 64,
        "encoder_layers": 2,
        "encoder_attention_heads": 2,  # head_dim 32
        "encoder_ffn_dim": 256,
        "decoder_layers": 2,
        "decoder_attention_heads": 2,  # head_dim 32
        "decoder_ffn_dim": 256,
        "max_source_positions": MAX_SOURCE_POSITIONS,
        "max_target_positions": MAX_TARGET_POSITIONS,
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "dtype": "float32",
        "pad_token_id": eot,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "decoder_start_token_id": sot,
        "begin_suppress_tokens": None,
        "suppress_tokens": None,
        "use_cache": True,
        # Not used by vLLM; recorded so the folder is self-describing.
        "_profilemate": {"no_timestamps_token_id": nots, "chunk_length": CHUNK_SECONDS},
    }


def _whisper_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken, WhisperTokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    spec = json.loads(tok.to_str())["model"]
    vocab = spec["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["merges"]]
    if len(vocab) != BPE_VOCAB_SIZE:  # tiny corpus: pad so special-token ids stay fixed
        for i in range(BPE_VOCAB_SIZE - len(vocab)):
            vocab[f"<|unused{i}|>"] = len(vocab)

    wt = WhisperTokenizer(vocab=vocab, merges=merges)
    # Appended in order after the BPE vocabulary, so their ids match _token_ids().
    wt.add_tokens(
        [
            AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=True)
            for t in _special_tokens()
        ],
        special_tokens=True,
    )
    wt.model_max_length = MAX_TARGET_POSITIONS
    got = {t: wt.convert_tokens_to_ids(t) for t in _special_tokens()}
    if got != _token_ids():
        raise RuntimeError(f"unexpected Whisper special-token ids: {got}")
    return wt


def build_encdec(target: Path) -> None:
    """Write a complete tiny Whisper model folder (config, weights, tokenizer, processor)."""
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    config = whisper_config()

    def write(folder: Path) -> None:
        torch.manual_seed(SEED)
        hf_config = WhisperConfig(**{k: v for k, v in config.items() if not k.startswith("_")})
        model = WhisperForConditionalGeneration(hf_config).to(torch.float32).eval()
        model.save_pretrained(str(folder), safe_serialization=True)
        feature_extractor = WhisperFeatureExtractor(
            feature_size=NUM_MEL_BINS,
            sampling_rate=SAMPLING_RATE,
            hop_length=HOP_LENGTH,
            chunk_length=CHUNK_SECONDS,
            n_fft=N_FFT,
        )
        WhisperProcessor(
            feature_extractor=feature_extractor, tokenizer=_whisper_tokenizer()
        ).save_pretrained(str(folder))

    build_atomically(Path(target), "whisper", write)


def ensure_encdec(cache_dir: Path | None = None) -> Path:
    """Return the cached tiny Whisper folder, generating it on first use."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    target = cache / f"whisper-{fingerprint(whisper_config())}"
    if not (target / "profilemate_model.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        build_encdec(target)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="cache folder")
    args = ap.parse_args(argv)
    print(f"whisper\t{ensure_encdec(args.cache)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
