"""Turn a prompt (text or chat messages) and a response into token ids.

The template is the model's chat template when it has one ("chat"), else a plain
layout ("plain"): a text prompt followed by a newline; messages as "Role: content"
lines ending in "Assistant:". Prompt and response are tokenized separately so that
the response tokens, and any per-token mask over them, have exact boundaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from curate.errors import BadUsage

TEMPLATES = ("auto", "chat", "plain")
SYNTH_TEMPLATES = (*TEMPLATES, "raw")  # generation backends also take a text prompt as it is
Prompt = str | Sequence[dict[str, Any]]


@dataclass
class Encoded:
    prompt_ids: list[int]
    response_ids: list[int]
    truncated: bool = False  # prompt + response were longer than max_length and lost tokens

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.response_ids


def as_messages(prompt: Prompt) -> list[dict[str, Any]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"] or ""} for m in prompt]


def render_prompt(prompt: Prompt, tokenizer: Any, template: str = "auto") -> str:
    """The text the model sees before the response."""
    if template not in TEMPLATES:
        raise BadUsage(f"unknown template {template!r}", hint="templates: " + ", ".join(TEMPLATES))
    if template == "chat" or (template == "auto" and getattr(tokenizer, "chat_template", None)):
        if not getattr(tokenizer, "chat_template", None):
            raise BadUsage("--template chat: this tokenizer has no chat template", hint="use --template plain")
        return tokenizer.apply_chat_template(as_messages(prompt), tokenize=False, add_generation_prompt=True)
    if isinstance(prompt, str):
        return prompt + "\n"
    lines = [f"{m['role'].capitalize()}: {m['content'] or ''}" for m in prompt]
    return "\n".join(lines) + "\nAssistant: "


def check_template(template: str) -> str:
    if template not in SYNTH_TEMPLATES:
        raise BadUsage(f"--template {template!r} is not a template", hint="templates: " + ", ".join(SYNTH_TEMPLATES))
    return template


def resolve_template(template: str, tokenizer: Any) -> str:
    """`auto` becomes `chat` for a tokenizer with a chat template, else `raw`."""
    check_template(template)
    if template == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "raw"
    return template


def tokenize_prompt(text: str, tokenizer: Any) -> list[int]:
    """Token ids of rendered prompt text, with exactly one BOS where the tokenizer uses one.

    A chat template may write the BOS itself: then it becomes the BOS id explicitly and the
    rest is tokenized without special tokens (this also holds for tokenizers that split
    special-token strings in text, like curate's byte tokenizer).
    """
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos) and tokenizer.bos_token_id is not None:
        return [tokenizer.bos_token_id] + list(tokenizer(text[len(bos):], add_special_tokens=False)["input_ids"])
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def prompt_token_ids(prompt: Prompt, tokenizer: Any, template: str = "auto") -> list[int]:
    """A prompt's ids as every generation backend feeds them to the model.

    template "raw" (completion style) takes a text prompt as the model's input unchanged.
    """
    if template == "raw":
        text = prompt if isinstance(prompt, str) else render_prompt(prompt, tokenizer, "plain")
    else:
        text = render_prompt(prompt, tokenizer, template)
    return tokenize_prompt(text, tokenizer)


CUT_MARGIN = 64  # tokens kept beyond the window by the character pre-cut (see _within_chars)
CHARS_PER_TOKEN = 8  # first guess of the pre-cut's size; more is taken whenever it falls short


def encode_pair(
    prompt: Prompt,
    response: str | None,
    tokenizer: Any,
    template: str = "auto",
    add_eos: bool = True,
    max_length: int | None = None,
) -> Encoded:
    """Token ids of the rendered prompt (with BOS, if the tokenizer uses one) and of the response.

    With `max_length`, a text far longer than that is cut to a few times max_length characters
    before it is tokenized (see `_within_chars`), so one huge row costs no more than a long one.
    """
    prompt_ids, response_ids = _prompt_ids(prompt, tokenizer, template, max_length), []
    if response:
        response_ids = _response_ids(response, tokenizer, max_length)
    if add_eos and response is not None and tokenizer.eos_token_id is not None:
        response_ids = response_ids + [tokenizer.eos_token_id]
    truncated = max_length is not None and len(prompt_ids) + len(response_ids) > max_length
    if truncated:
        # Too long: the response keeps at least half the room; the prompt loses its start (never all of it).
        response_ids = response_ids[: max_length - max(1, min(len(prompt_ids), max_length // 2))]
        prompt_ids = prompt_ids[len(prompt_ids) - (max_length - len(response_ids)):]
    return Encoded(list(prompt_ids), list(response_ids), truncated)


def _within_chars(encode, size: int, max_length: int | None) -> list[int]:
    """`encode(chars)`: the ids of the text cut to `chars` characters (None: the whole text),
    with `size` its length. A cut is taken only if it still has CUT_MARGIN tokens more than
    the window: then the window's tokens are those of the whole text (only the word at the cut
    may split differently, and it lies outside the window), and the truncation that follows
    keeps the same tokens it would keep from the whole text. A cut that falls short (text
    denser than CHARS_PER_TOKEN, or a normalizer that deletes characters) grows fourfold."""
    if max_length is None:
        return encode(None)
    need = max_length + CUT_MARGIN
    chars = need * CHARS_PER_TOKEN
    while chars < size:
        ids = encode(chars)
        if len(ids) >= need:
            return ids
        chars *= 4
    return encode(None)


def _prompt_ids(prompt: Prompt, tokenizer: Any, template: str, max_length: int | None) -> list[int]:
    """The prompt keeps its end: each message's content and the rendered text are cut from the left.
    (A character more than `chars` before the end of its message is that far before the end of
    the rendered prompt, so outside any window of `chars` characters.)"""
    def encode(chars: int | None) -> list[int]:
        if chars is None:
            return tokenize_prompt(render_prompt(prompt, tokenizer, template), tokenizer)
        shown = prompt[-chars:] if isinstance(prompt, str) else [
            {**m, "content": (m["content"] or "")[-chars:]} for m in prompt]
        return tokenize_prompt(render_prompt(shown, tokenizer, template)[-chars:], tokenizer)

    size = len(prompt) if isinstance(prompt, str) else sum(len(m["content"] or "") + 32 for m in prompt)
    return _within_chars(encode, size, max_length)


def _response_ids(response: str, tokenizer: Any, max_length: int | None) -> list[int]:
    """The response keeps its start."""
    def encode(chars: int | None) -> list[int]:
        return list(tokenizer(response if chars is None else response[:chars], add_special_tokens=False)["input_ids"])

    return _within_chars(encode, len(response), max_length)


def encode_pairs(
    prompts: Sequence[Prompt],
    responses: Sequence[str | None],
    tokenizer: Any,
    template: str = "auto",
    add_eos: bool = True,
    max_length: int | None = None,
) -> list[Encoded]:
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    return [encode_pair(p, r, tokenizer, template, add_eos, max_length) for p, r in zip(prompts, responses)]
