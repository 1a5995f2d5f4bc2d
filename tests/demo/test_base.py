"""The demo's base: a BPE tokenizer of its own, trained from random weights on the warm-up set, cached."""

from __future__ import annotations

import json

import pytest

from curate.catalog.ingest import IngestOptions, ingest
from curate.demo.base import BaseConfig, ensure_base, train_tokenizer
from curate.demo.pool import fresh_problems
from curate.lm import byte_tokenizer
from curate.train.provenance import training_history


def test_tokenizer_round_trips_any_text_and_keeps_the_byte_tokenizers_specials():
    texts = [r["question"] + "\n" + r["answer"] for r in fresh_problems(300, 0, set(), draw=300)]
    tokenizer = train_tokenizer(texts, 512)
    assert [tokenizer.convert_tokens_to_ids(t) for t in byte_tokenizer.SPECIALS] == [0, 1, 2, 3]
    assert tokenizer.pad_token_id == 0 and tokenizer.bos_token_id == 1 and tokenizer.eos_token_id == 2
    for text in (texts[0], "Click here: 96% off! Ünïcödé ✓ <s> tabs\tand\nnewlines", "12345 + 67 = 12412"):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text  # byte-level: nothing is out of vocabulary
    question = tokenizer(texts[0].split("\n")[0], add_special_tokens=False)["input_ids"]
    assert len(question) < len(texts[0].split("\n")[0].encode()) / 2  # words and numbers merged
    assert tokenizer("x")["input_ids"][0] == byte_tokenizer.BOS


@pytest.mark.slow
def test_base_is_trained_on_the_warmup_set_recorded_and_cached(ws, tmp_path):
    rows = [{"question": r["question"], "answer": r["answer"]} for r in fresh_problems(120, 5, set(), draw=400)]
    path = tmp_path / "warm.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    warm = ingest(ws, str(path), IngestOptions(name="demo-warmup")).version
    config = BaseConfig(problems=120, steps=3, batch_tokens=512)
    steps = []
    folder, stats = ensure_base(ws, warm, config, progress=lambda step, _m: steps.append(step))
    assert steps == [1, 2, 3] and not stats["cached"] and stats["warmup"] == warm.ref
    assert not (folder / "checkpoint").exists() and (folder / "tokenizer.json").exists()
    history = training_history(str(folder))
    assert history[0].kind == "sft" and history[0].data_ref == warm.ref
    assert history[0].data_hash == warm.content_hash
    again, cached = ensure_base(ws, warm, config)
    assert again == folder and cached["cached"] and cached["final_loss"] == stats["final_loss"]
    other, _ = ensure_base(ws, warm, BaseConfig(problems=120, steps=2, batch_tokens=512))
    assert other != folder  # the config is part of the cache key
