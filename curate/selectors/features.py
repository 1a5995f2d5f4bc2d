"""Per-example model features for selectors: response losses and hidden states, streamed.

Every selector that reads a model goes through here, so all of them tokenize an example the
same way: `curate.lm.templates.encode_pair(prompt, response, add_eos=True)`, which is also
how the SFT trainer sees it, so per-token results line up with a `token_mask`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from curate.lm.templates import Encoded, encode_pair


def iter_encoded(pool, lm, mask: np.ndarray, answer_only: bool = False) -> Iterator[tuple[np.ndarray, list[Encoded]]]:
    """(positions, encoded examples) per batch of the rows where `mask` is set.

    answer_only: the response alone, after a single start token (BOS, or EOS for tokenizers
    without one), as Cherry LLM's direct-answer score needs.
    """
    tokenizer = lm.tokenizer
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    for frame in pool.iter_frames(["prompt", "response"], mask):
        items = []
        for prompt, response in zip(frame["prompt"].to_list(), frame["response"].to_list()):
            item = encode_pair(prompt, response, tokenizer, pool.template, add_eos=True, max_length=lm.max_length)
            if answer_only:
                item = Encoded([start], item.response_ids[: lm.max_length - 1], item.truncated)
            items.append(item)
        pool.truncated += sum(item.truncated for item in items)
        yield frame["_pos"].to_numpy(), items


def batch_progress(pool, what: str, done: int, total: int) -> Callable[[int], None]:
    """A model batch's callback that moves the pool's progress on from `done` rows (a window of
    rows comes back from the model at once, so counting per window would jump)."""
    counted = done

    def step(rows: int) -> None:
        nonlocal counted
        counted += rows
        pool.say(what, counted, total)

    return step


def token_nll(pool, lm, mask: np.ndarray, answer_only: bool = False, what: str = "scoring") -> Iterator[tuple[int, np.ndarray]]:
    """(position, −log p of each response token) for the rows where `mask` is set."""
    from curate.lm.scoring import token_logprobs

    total, done = int(mask.sum()), 0
    for positions, items in iter_encoded(pool, lm, mask, answer_only):
        for position, logprobs in zip(positions, token_logprobs(lm, items, on_batch=batch_progress(pool, what, done,
                                                                                                   total))):
            yield int(position), -np.asarray(logprobs, dtype=np.float64)
        done += len(positions)


def mean_nll(pool, lm, mask: np.ndarray, answer_only: bool = False, what: str = "scoring") -> np.ndarray:
    """Mean response-token loss by pool position (NaN where masked out or with no tokens)."""
    out = np.full(pool.rows, np.nan)
    for position, nll in token_nll(pool, lm, mask, answer_only, what):
        if len(nll):
            out[position] = float(nll.mean())
    return out


def response_states(pool, lm, mask: np.ndarray, pool_mode: str | None = None,
                    what: str = "hidden states") -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
    """(positions, last-layer states of the response tokens [R, d] or pooled [d]) per batch."""
    from curate.lm.scoring import hidden_states

    total, done = int(mask.sum()), 0
    for positions, items in iter_encoded(pool, lm, mask):
        states = list(hidden_states(lm, items, positions="response", pool=pool_mode,
                                    on_batch=batch_progress(pool, what, done, total)))
        yield positions, states
        done += len(positions)
