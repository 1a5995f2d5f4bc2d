"""Per-example model computations that run the same in this process or inside a Ray actor.

A row job is a small, picklable description of what to compute for each (prompt, response)
row: the models it needs (paths or hub ids, loaded once by whoever runs it) and `run`, which
turns a batch of rows into one result per row. The local engine calls `run` on batches it
streams from the shards; the Ray engine (`curate.lm.ray_engine`) ships the same job to actors
that hold the models. Same code, same tokenization (`encode_pair(..., add_eos=True)`, as the
SFT trainer sees an example), same length-bucketed batching: the engines differ only in which
rows share a batch, which moves results by float rounding at most.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from curate.errors import ModelLoadError
from curate.lm.loading import LM
from curate.lm.templates import Encoded, encode_pair

OnBatch = Callable[[int], None] | None


@dataclass(frozen=True)
class RowJob(abc.ABC):
    """Base: `models` to load, `run(lms, prompts, responses)` -> (one result per row, whether each
    row was cut to the model's context)."""

    models: tuple[str, ...]
    template: str = "auto"

    @property
    def passes(self) -> int:
        """How many times `run` sends each row through a model (progress counts rows once)."""
        return len(self.models)

    def check(self, lms: Sequence[LM]) -> None:
        """Validate the loaded models before any row runs (raises a CurateError)."""

    @abc.abstractmethod
    def run(self, lms: Sequence[LM], prompts: list, responses: list, on_batch: OnBatch = None) -> tuple[list, list[bool]]:
        """One result per row, and whether each row was cut to the model's context."""


def _start_token(tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode_rows(lm: LM, prompts: list, responses: list, template: str, answer_only: bool = False) -> list[Encoded]:
    """Rows as the model sees them (an EOS after each response); `answer_only`: the response after
    one start token, as Cherry LLM's direct-answer score needs."""
    tokenizer = lm.tokenizer
    items = [encode_pair(p, r, tokenizer, template, add_eos=True, max_length=lm.max_length)
             for p, r in zip(prompts, responses)]
    if answer_only:
        start = _start_token(tokenizer)
        items = [Encoded([start], item.response_ids[: lm.max_length - 1], item.truncated) for item in items]
    return items


@dataclass(frozen=True)
class ResponseLosses(RowJob):
    """−log p of each response token (float64), under each model and each conditioning.

    A row's result is a tuple with one array per (model, conditioning) pair, models outer:
    `answer_only=(False, True)` gives IFD's loss given the question and loss of the answer alone
    in one pass over the rows; two models give token cleaning's base and reference losses.
    """

    answer_only: tuple[bool, ...] = (False,)

    @property
    def passes(self) -> int:
        return len(self.models) * len(self.answer_only)

    def check(self, lms: Sequence[LM]) -> None:
        first = lms[0].tokenizer.get_vocab()
        for lm in lms[1:]:
            if lm.tokenizer.get_vocab() != first:
                raise ModelLoadError(f"{lm.name} uses another tokenizer than {lms[0].name}",
                                     hint="score with models that share one tokenizer (train one from the other)")

    def run(self, lms: Sequence[LM], prompts: list, responses: list, on_batch: OnBatch = None) -> tuple[list, list[bool]]:
        from curate.lm.scoring import token_logprobs

        columns, truncated = [], []
        for lm in lms:
            for answer_only in self.answer_only:
                items = encode_rows(lm, prompts, responses, self.template, answer_only)
                if not columns:
                    truncated = [item.truncated for item in items]
                columns.append([-np.asarray(lp, dtype=np.float64)
                                for lp in token_logprobs(lm, items, on_batch=on_batch)])
        return list(zip(*columns)), truncated


@dataclass(frozen=True)
class HiddenStates(RowJob):
    """Last-layer (pre-logit) hidden states of each row, optionally pooled, text-normalised or reduced.

    positions="response": the states that predict the response tokens; "all": every token.
    pool: None, "mean" or "last". text: applied to (prompts, responses) before encoding.
    reduce: applied to each row's array (e.g. FisherSFT's factor), so only what the caller keeps
    leaves the worker.
    """

    positions: str = "response"
    pool: str | None = None
    text: Callable[[list, list], tuple[list, list]] | None = None
    reduce: Callable[[np.ndarray], Any] | None = None

    def run(self, lms: Sequence[LM], prompts: list, responses: list, on_batch: OnBatch = None) -> tuple[list, list[bool]]:
        from curate.lm.scoring import hidden_states

        (lm,) = lms
        if self.text is not None:
            prompts, responses = self.text(prompts, responses)
        items = encode_rows(lm, prompts, responses, self.template)
        states = hidden_states(lm, items, positions=self.positions, pool=self.pool, on_batch=on_batch)
        out = [self.reduce(x) if self.reduce is not None else x for x in states]
        return out, [item.truncated for item in items]
