"""Rows far longer than the model's context: cut in characters before tokenizing, with the same
tokens as tokenizing everything and truncating (the brute-force reference)."""

from __future__ import annotations

import copy
import random

import pytest

from curate.lm import byte_tokenizer
from curate.lm.byte_tokenizer import EOS, byte_ids
from curate.lm.templates import (CUT_MARGIN, Encoded, encode_pair, render_prompt, tokenize_prompt)

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
WORDS = ("the cat sat on a mat while seven hungry dogs ran across wide green fields of corn "
         "==== ---- 12345 Ωmega café naïve 数学 ").split(" ")


def reference(prompt, response, tokenizer, template, max_length) -> Encoded:
    """encode_pair as it was: tokenize everything, then truncate."""
    prompt_ids = tokenize_prompt(render_prompt(prompt, tokenizer, template), tokenizer)
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] if response else []
    return truncate(prompt_ids, response_ids + [tokenizer.eos_token_id], max_length)


def truncate(prompt_ids: list[int], response_ids: list[int], max_length: int) -> Encoded:
    truncated = len(prompt_ids) + len(response_ids) > max_length
    if truncated:
        response_ids = response_ids[: max_length - max(1, min(len(prompt_ids), max_length // 2))]
        prompt_ids = prompt_ids[len(prompt_ids) - (max_length - len(response_ids)):]
    return Encoded(list(prompt_ids), list(response_ids), truncated)


def text(words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


@pytest.fixture(scope="module")
def bpe():
    """A small BPE tokenizer trained here: tokens of many characters, unlike the byte tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator([text(200, seed) for seed in range(50)] + ["=" * 64, "-" * 64], trainer)
    from tokenizers import decoders, processors

    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


@pytest.fixture(scope="module")
def byte_tok():
    return byte_tokenizer.build()


@pytest.mark.parametrize("which", ["byte", "bpe"])
@pytest.mark.parametrize("max_length", [8, 64, 300])
def test_cut_matches_tokenizing_everything(which, max_length, byte_tok, bpe):
    tokenizer = byte_tok if which == "byte" else bpe
    chat = copy.deepcopy(tokenizer)
    chat.chat_template = CHAT_TEMPLATE
    sizes = (3, max_length // 4, max_length * 3, max_length * 40)  # words: short, near, over and far over
    for seed, (p_words, r_words) in enumerate([(a, b) for a in sizes for b in sizes]):
        prompt, response = text(p_words, seed), text(r_words, seed + 1000)
        for tok, template, shown in ((tokenizer, "plain", prompt), (chat, "chat", prompt),
                                     (chat, "chat", [{"role": "system", "content": text(p_words, seed + 7)},
                                                     {"role": "user", "content": prompt}])):
            got = encode_pair(shown, response, tok, template, max_length=max_length)
            assert got == reference(shown, response, tok, template, max_length), (which, max_length, p_words, r_words)


def test_a_huge_row_is_cut_before_it_is_tokenized(byte_tok):
    """The tokenizer never sees more than a bounded number of characters of a 5 MB row."""
    seen = []
    real = byte_tok.__call__

    class Spy:
        def __getattr__(self, name):
            return getattr(byte_tok, name)

        def __call__(self, text, **kwargs):
            seen.append(len(text))
            return real(text, **kwargs)

    huge = "word " * 1_000_000
    got = encode_pair(huge, huge, Spy(), "plain", max_length=100)
    assert got.truncated and len(got) == 100
    # the byte tokenizer's ids are known without it: BOS, then 4 + each byte
    assert got == truncate(byte_ids(huge + "\n"), byte_ids(huge, bos=False) + [EOS], 100)
    assert max(seen) <= (100 + CUT_MARGIN) * 8 * 4  # the first cut, or one fourfold step


def test_a_normalizer_that_deletes_characters_still_gets_a_full_window():
    """Text the normalizer mostly deletes: the first cut falls short and grows until it has enough tokens."""
    from tokenizers import normalizers

    tok = byte_tokenizer.build()
    tok.backend_tokenizer.normalizer = normalizers.Replace("x", "")
    response = "x" * 5000 + "abc" * 40
    got = encode_pair("q", response, tok, "plain", max_length=60)
    assert got == reference("q", response, tok, "plain", 60)
    assert got.response_ids[:3] == [4 + ord("a"), 4 + ord("b"), 4 + ord("c")]
