"""Fixtures for the model layer: loaded tiny models (built by the tests, never downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest


def save_tiny_llama(folder: Path, seed: int = 0, initializer_range: float = 0.02, **overrides) -> Path:
    """A random 2-layer Llama with the byte tokenizer, saved like `save_pretrained` does."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from curate.lm import byte_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    settings = dict(vocab_size=byte_tokenizer.VOCAB_SIZE, hidden_size=32, intermediate_size=64,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    max_position_embeddings=1024, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                    tie_word_embeddings=True, initializer_range=initializer_range)
    settings.update(overrides)
    LlamaForCausalLM(LlamaConfig(**settings)).save_pretrained(str(folder))
    byte_tokenizer.save(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir):
    """The tiny model, loaded once in float32 on the CPU."""
    from curate.lm.loading import load

    return load(str(tiny_model_dir), dtype="float32", device="cpu")


@pytest.fixture(scope="session")
def sharp_lm(tmp_path_factory):
    """A tiny model with large random weights: its next-token distribution is peaked, so greedy
    decoding produces varied tokens with clear margins (the default init gives near-uniform logits)."""
    from curate.lm.loading import load

    folder = save_tiny_llama(tmp_path_factory.mktemp("sharp-model"), seed=0, initializer_range=0.5)
    return load(str(folder), dtype="float32", device="cpu")
