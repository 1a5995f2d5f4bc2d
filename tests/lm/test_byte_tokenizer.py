"""The byte-level tokenizer: `byte_ids` equals what the saved tokenizer gives, and decoding round-trips."""

from __future__ import annotations

import pytest

from curate.lm import byte_tokenizer
from curate.lm.byte_tokenizer import BOS, EOS, OFFSET, PAD, UNK, VOCAB_SIZE, byte_ids

TEXTS = [
    "Hello, world!",
    "ASCII: 0123456789 ~!@#$%^&*()_+-=[]{}|;':\",./<>?`",
    "café, naïve, Ærøskøbing, Straße, ñandú",
    "数学题：三加四等于七。日本語のテキスト、한국어",
    "emoji 😀🚀👩‍👩‍👧 and flags 🇫🇷",
    "line one\nline two\r\n\ttabbed\tand\vvertical\x0cform",
    "   three leading spaces",
    " one leading space",
    "trailing spaces   ",
    "\n\nleading newlines",
    "",
    "\x00\x01\x7f control bytes",
    "Ġ Ċ ĉ look like GPT-2 byte symbols",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The tokenizer as a user gets it: saved to a folder and loaded with AutoTokenizer."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("byte-tokenizer")
    byte_tokenizer.save(folder)
    return AutoTokenizer.from_pretrained(str(folder))


def test_saved_tokenizer_layout(saved):
    assert len(saved) == VOCAB_SIZE == 260
    assert (saved.pad_token_id, saved.bos_token_id, saved.eos_token_id, saved.unk_token_id) == (PAD, BOS, EOS, UNK)
    assert saved.convert_ids_to_tokens([PAD, BOS, EOS, UNK]) == ["<pad>", "<s>", "</s>", "<unk>"]
    # one token per byte, 4 + byte, all 256 bytes distinct
    assert sorted(saved.get_vocab().values()) == list(range(VOCAB_SIZE))


@pytest.mark.parametrize("text", TEXTS)
def test_byte_ids_equal_the_saved_tokenizer(saved, text):
    assert byte_ids(text) == saved(text)["input_ids"]
    assert byte_ids(text, bos=False) == saved(text, add_special_tokens=False)["input_ids"]
    assert byte_ids(text, bos=False) == [b + OFFSET for b in text.encode("utf-8")]


@pytest.mark.parametrize("text", TEXTS)
def test_decode_round_trips(saved, text):
    assert saved.decode(byte_ids(text), skip_special_tokens=True) == text
    assert saved.decode(byte_ids(text, bos=False)) == text
    assert saved.decode(byte_ids(text) + [EOS], skip_special_tokens=True) == text


def test_every_byte_has_its_own_token(saved):
    ids = [b + OFFSET for b in range(256)]
    assert saved.convert_tokens_to_ids(saved.convert_ids_to_tokens(ids)) == ids
    assert len(set(saved.convert_ids_to_tokens(ids))) == 256


def test_batch_encoding_matches(saved):
    batch = saved(TEXTS)["input_ids"]
    assert batch == [byte_ids(t) for t in TEXTS]


@pytest.mark.parametrize("text", ["HTML <s>strike</s> text", "a <pad> b", "<unk>"])
def test_byte_ids_equal_the_saved_tokenizer_on_special_token_strings(saved, text):
    assert byte_ids(text) == saved(text)["input_ids"]
