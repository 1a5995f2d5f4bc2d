"""Prompt rendering and prompt/response encoding: plain and chat templates, BOS/EOS, truncation."""

from __future__ import annotations

import copy

import pytest

from curate.errors import BadUsage
from curate.lm import byte_tokenizer
from curate.lm.byte_tokenizer import BOS, EOS, byte_ids
from curate.lm.templates import Encoded, as_messages, encode_pair, encode_pairs, render_prompt

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer.build()


@pytest.fixture(scope="module")
def chat_tok(tok):
    chat = copy.deepcopy(tok)
    chat.chat_template = CHAT_TEMPLATE
    return chat


def test_plain_template_for_text_and_messages(tok):
    assert render_prompt("What is 2+2?", tok) == "What is 2+2?\n"
    assert render_prompt("What is 2+2?", tok, "plain") == "What is 2+2?\n"
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": None}]
    assert render_prompt(messages, tok) == "System: Be brief.\nUser: Hi\nAssistant: Hello\nUser: \nAssistant: "


def test_encode_pair_plain_ids(tok):
    item = encode_pair("Q: 1+1?", "2", tok)
    assert item.prompt_ids == byte_ids("Q: 1+1?\n")
    assert item.response_ids == byte_ids("2", bos=False) + [EOS]
    assert item.input_ids == item.prompt_ids + item.response_ids
    assert len(item) == len(item.prompt_ids) + len(item.response_ids)


def test_encode_pair_messages(tok):
    item = encode_pair([{"role": "user", "content": "hi"}], "yo", tok)
    assert item.prompt_ids == byte_ids("User: hi\nAssistant: ")


def test_response_ends_with_eos_only_when_asked(tok):
    assert encode_pair("p", "abc", tok, add_eos=True).response_ids[-1] == EOS
    without = encode_pair("p", "abc", tok, add_eos=False).response_ids
    assert without == byte_ids("abc", bos=False) and EOS not in without
    assert encode_pair("p", "", tok).response_ids == [EOS]  # an empty response still ends


def test_none_response_gives_empty_response_ids(tok):
    item = encode_pair("prompt only", None, tok, add_eos=True)
    assert item.response_ids == []
    assert item.prompt_ids == byte_ids("prompt only\n")


def test_bos_is_never_duplicated(tok, chat_tok):
    # A plain prompt gets exactly one BOS from the tokenizer.
    assert encode_pair("hello", "x", tok).prompt_ids.count(BOS) == 1
    # A chat template that writes the BOS itself: the tokenizer must not add a second one.
    item = encode_pair("hello", "x", chat_tok)
    assert item.prompt_ids[0] == BOS and item.prompt_ids[1] != BOS
    assert item.prompt_ids.count(BOS) == 1
    assert item.response_ids == byte_ids("x", bos=False) + [EOS]


def test_chat_template_is_used_when_the_tokenizer_has_one(chat_tok, tok):
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert render_prompt(messages, chat_tok) == "<s><|system|>S\n<|user|>U\n<|assistant|>"
    assert render_prompt("U", chat_tok, "auto") == "<s><|user|>U\n<|assistant|>"
    assert render_prompt("U", chat_tok, "plain") == "U\n"  # plain on request
    with pytest.raises(BadUsage, match="no chat template"):
        render_prompt("U", tok, "chat")
    with pytest.raises(BadUsage, match="unknown template"):
        render_prompt("U", tok, "jinja")


def test_as_messages():
    assert as_messages("hi") == [{"role": "user", "content": "hi"}]
    assert as_messages([{"role": "user", "content": None, "name": "x"}]) == [{"role": "user", "content": ""}]


@pytest.mark.parametrize("prompt_len", [0, 1, 5, 40, 200])
@pytest.mark.parametrize("response_len", [0, 1, 7, 60, 300])
@pytest.mark.parametrize("max_length", [2, 3, 10, 33, 64, 128])
def test_truncation_never_exceeds_max_length_and_keeps_half_for_the_response(tok, prompt_len, response_len,
                                                                             max_length):
    prompt = "p" * prompt_len
    response = "r" * response_len
    full = encode_pair(prompt, response, tok)
    cut = encode_pair(prompt, response, tok, max_length=max_length)
    assert len(cut) <= max_length
    if len(full) <= max_length:
        assert cut == full  # nothing to cut
        return
    assert len(cut) == max_length  # the room is used, not wasted
    # The response keeps at least half the room (or all of itself), from its start.
    assert len(cut.response_ids) >= min(len(full.response_ids), max_length / 2)
    assert cut.response_ids == full.response_ids[: len(cut.response_ids)]
    # The prompt loses its start: what is left is the end of the prompt.
    assert cut.prompt_ids == full.prompt_ids[len(full.prompt_ids) - len(cut.prompt_ids):]
    # A short response keeps everything; the prompt gives up the rest.
    if len(full.response_ids) <= max_length // 2:
        assert cut.response_ids == full.response_ids


def test_truncation_keeps_some_prompt_so_the_first_response_token_is_scored(tok):
    """Scoring reads the state before the first response token, so a cut prompt must keep >= 1 token."""
    for max_length in range(2, 40):
        cut = encode_pair("p" * 50, "r" * 50, tok, max_length=max_length)
        assert len(cut.prompt_ids) >= 1


def test_encode_pairs_checks_lengths(tok):
    items = encode_pairs(["a", "b"], ["x", None], tok)
    assert items == [encode_pair("a", "x", tok), encode_pair("b", None, tok)]
    assert isinstance(items[0], Encoded)
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        encode_pairs(["a", "b"], ["x"], tok)


def test_stories_tokenizer_bos_and_eos(shared):
    """A sentencepiece tokenizer (stories260K): one BOS, EOS after the response."""
    from transformers import AutoTokenizer

    from tests.conftest import shared_file

    stories = AutoTokenizer.from_pretrained(str(shared_file(shared, "models/stories260K")))
    item = encode_pair("Once upon a time", "there was a cat.", stories)
    assert item.prompt_ids[0] == stories.bos_token_id and item.prompt_ids.count(stories.bos_token_id) == 1
    assert item.response_ids[-1] == stories.eos_token_id
    assert stories.bos_token_id not in item.response_ids
    assert stories.decode(item.response_ids, skip_special_tokens=True).strip() == "there was a cat."
