"""Training data: rows from a catalog dataset version (or a list of dicts), tokenised for SFT, or as GRPO prompts.

SFT rows need `prompt` and `response`; an optional `token_mask` (0/1 per response token of
this model's tokenizer, as `curate.lm.templates.encode_pair(..., add_eos=True)` produces
them, EOS included) keeps masked tokens out of the loss. Rows without a response are
skipped and counted. Micro-batches are either packed rows (several whole examples per row
under a token budget, best-fit decreasing: no padding at all; see `curate.train.packing`) or
length-sorted padded batches under the same budget (GRPO-Zero's "sort by length before
micro-batching": padding nearly zero, but each batch holds examples of one length). Their
order is shuffled per epoch from the seed, which makes step s's data a pure function of
(seed, s) and resume exact.

GRPO rows need `prompt`; every other column (`answer`, `tests`, `domain`, `response`,
...) is handed to the reward functions as TRL does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from curate.catalog.ids import content_id
from curate.catalog.versions import DatasetVersion
from curate.errors import BadInput, BadUsage
from curate.lm.batching import pack, pack_bins
from curate.lm.templates import encode_pair, prompt_token_ids

SFT_COLUMNS = ("id", "prompt", "response", "token_mask")
PROMPT_COLUMNS = ("id", "prompt", "response", "answer", "tests", "domain", "meta")


def iter_rows(data: DatasetVersion | Sequence[dict], columns: Sequence[str]) -> Iterator[dict]:
    """Rows of a dataset version (streamed, only `columns`) or of a list of dicts."""
    if isinstance(data, DatasetVersion):
        present = [c for c in columns if c in data.columns]
        if "prompt" not in present:
            raise BadInput(f"dataset {data.ref} has no prompt column", hint="ingest it with --map prompt=COLUMN")
        for batch in data.iter_batches(columns=present):
            yield from batch.to_dicts()
        return
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        raise BadUsage(f"training data must be a DatasetVersion or a list of dicts, not {type(data).__name__}")
    for index, row in enumerate(data):
        if not isinstance(row, dict) or "prompt" not in row:
            raise BadInput(f"training row {index} is not a dict with a 'prompt' key",
                           hint="rows look like {'prompt': ..., 'response': ...}")
        yield row


def describe(data: DatasetVersion | Sequence[dict]) -> str:
    return data.ref if isinstance(data, DatasetVersion) else f"{len(data)} rows"


@dataclass
class SFTExample:
    input_ids: list[int]  # prompt, then response (EOS included)
    prompt_len: int
    weights: list[float]  # one per response token: 1 trains on it, 0 masks it

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def prompt_ids(self) -> list[int]:
        return self.input_ids[: self.prompt_len]

    @property
    def response_ids(self) -> list[int]:
        return self.input_ids[self.prompt_len:]


def encode_sft(data: DatasetVersion | Sequence[dict], tokenizer: Any, template: str = "auto",
               max_length: int | None = None) -> tuple[list[SFTExample], dict[str, int]]:
    """Tokenise the SFT rows; returns the examples and counts (rows, no_response, truncated, masked_tokens)."""
    examples: list[SFTExample] = []
    counts = {"rows": 0, "no_response": 0, "truncated": 0, "masked_tokens": 0}
    for index, row in enumerate(iter_rows(data, SFT_COLUMNS)):
        counts["rows"] += 1
        response = row.get("response")
        if response is None or (isinstance(response, str) and not response.strip()):
            counts["no_response"] += 1
            continue
        full = encode_pair(row["prompt"], response, tokenizer, template, add_eos=True)
        encoded = full if max_length is None else encode_pair(row["prompt"], response, tokenizer, template,
                                                              add_eos=True, max_length=max_length)
        if len(encoded) < len(full):
            counts["truncated"] += 1
        mask = row.get("token_mask")
        if mask is None:
            weights = [1.0] * len(encoded.response_ids)
        else:
            mask = list(mask)
            if len(mask) != len(full.response_ids):
                name = row.get("id") or f"row {index}"
                raise BadInput(f"token_mask of {name} has {len(mask)} entries but its response has "
                               f"{len(full.response_ids)} tokens under this model's tokenizer (EOS included)",
                               hint="token masks are tied to the tokenizer that made them: train with that model, "
                                    "or recompute the mask (curate select --strategy token-clean) for this one")
            weights = [float(bool(m)) for m in mask[: len(encoded.response_ids)]]
            counts["masked_tokens"] += len(weights) - int(sum(weights))
        if not encoded.response_ids or len(encoded.prompt_ids) == 0:
            counts["no_response"] += 1
            continue
        examples.append(SFTExample(encoded.prompt_ids + encoded.response_ids, len(encoded.prompt_ids), weights))
    if not examples:
        raise BadInput(f"no trainable rows in {describe(data)}: {counts['no_response']} of {counts['rows']} rows "
                       "have no response", hint="SFT needs a response column; map it with --map response=COLUMN")
    return examples, counts


def micro_batches(examples: Sequence[SFTExample], batch_tokens: int) -> list[list[int]]:
    """Indices of `examples` in length-sorted micro-batches of at most `batch_tokens` padded tokens."""
    return pack([len(e) for e in examples], batch_tokens)


def packed_micro_batches(examples: Sequence[SFTExample], batch_tokens: int, seed: int = 0) -> list[list[int]]:
    """Indices of `examples` in packed rows of at most `batch_tokens` tokens (best-fit decreasing, ties by seed)."""
    return pack_bins([len(e) for e in examples], batch_tokens, seed)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch `epoch` visits n items: a permutation fixed by (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def stream_slice(n: int, seed: int, start: int, count: int) -> list[int]:
    """Items start..start+count-1 of the endless stream epoch 0, epoch 1, ... (each a fresh permutation)."""
    out: list[int] = []
    position = start
    while len(out) < count:
        epoch, offset = divmod(position, n)
        order = epoch_order(n, seed, epoch)
        take = min(count - len(out), n - offset)
        out.extend(int(i) for i in order[offset:offset + take])
        position += take
    return out


def prompt_ids(prompt: Any, tokenizer: Any, template: str = "auto") -> list[int]:
    """The prompt's token ids exactly as the generation backends encode it."""
    return prompt_token_ids(prompt, tokenizer, template)


def load_prompts(data: DatasetVersion | Sequence[dict], tokenizer: Any, template: str = "auto",
                 max_prompt_length: int | None = None) -> tuple[list[dict], dict[str, int]]:
    """GRPO prompt rows (each with its ledger `id` and `prompt_len`); over-long prompts are dropped and counted."""
    rows: list[dict] = []
    counts = {"rows": 0, "too_long": 0, "with_response": 0}
    for row in iter_rows(data, PROMPT_COLUMNS):
        counts["rows"] += 1
        row = dict(row)
        if not row.get("id"):
            row["id"] = content_id(row["prompt"], row.get("response"), row.get("answer"), row.get("tests"))
        length = len(prompt_ids(row["prompt"], tokenizer, template))
        if max_prompt_length is not None and length > max_prompt_length:
            counts["too_long"] += 1
            continue
        row["prompt_len"] = length
        counts["with_response"] += bool(row.get("response"))
        rows.append(row)
    if not rows:
        raise BadInput(f"no usable prompts in {describe(data)} ({counts['too_long']} longer than "
                       f"max_prompt_length={max_prompt_length})", hint="raise --max-prompt-length")
    return rows, counts
