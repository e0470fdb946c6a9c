"""The tiny model generator: deterministic, complete, and reused from its cache."""

import json

import pytest

from profilemate.demo.models import ALL_MODELS, ensure_model


def test_dense_model_is_deterministic_and_cached(tmp_path):
    a = ensure_model("dense", tmp_path / "a")
    b = ensure_model("dense", tmp_path / "b")
    assert a.name == b.name  # same recipe -> same fingerprinted folder name
    for f in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    marker = json.loads((a / "profilemate_model.json").read_text())
    assert marker["name"] == "dense"
    mtime = (a / "model.safetensors").stat().st_mtime_ns
    assert ensure_model("dense", tmp_path / "a") == a  # reused, not rebuilt
    assert (a / "model.safetensors").stat().st_mtime_ns == mtime
    assert not list((tmp_path / "a").glob("*.tmp*"))  # no half-built folders left


def test_tokenizer_round_trips_and_matches_config(tmp_path):
    from transformers import AutoTokenizer

    d = ensure_model("dense", tmp_path)
    tok = AutoTokenizer.from_pretrained(str(d))
    cfg = json.loads((d / "config.json").read_text())
    text = "the quick brown fox measures what vLLM schedules"
    ids = tok(text)["input_ids"]
    assert ids and max(ids) < cfg["vocab_size"]
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.eos_token_id == cfg["eos_token_id"]


def test_unknown_model_name_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="choose one of"):
        ensure_model("gpt-17", tmp_path)
    assert "whisper" in ALL_MODELS
