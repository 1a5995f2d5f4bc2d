"""Per-example model features for selectors: response losses and hidden states, streamed.

Every selector that reads a model goes through here, so all of them tokenize an example the
same way: `curate.lm.templates.encode_pair(prompt, response, add_eos=True)`, which is also
how the SFT trainer sees it, so per-token results line up with a `token_mask`. The model work
is a row job (`curate.lm.rowjobs`) run by the pool's engine (`curate.selectors.engine`: in
this process, or on Ray actors); results stream back a batch of rows at a time, which is what
lets a scorer commit its scores in chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from curate.lm.rowjobs import HiddenStates, ResponseLosses, RowJob


def run_job(pool, job: RowJob, mask: np.ndarray, what: str) -> Iterator[tuple[np.ndarray, list]]:
    """(positions, one result per row) for the rows where `mask` is set, on the pool's engine."""
    if not mask.any():
        return iter(())
    return pool.engine.map_rows(pool, job, mask, what)


def response_losses(pool, mask: np.ndarray, models: Sequence[str | None] = (None,),
                    answer_only: tuple[bool, ...] = (False,),
                    what: str = "scoring") -> Iterator[tuple[np.ndarray, list[tuple[np.ndarray, ...]]]]:
    """(positions, per row a tuple of −log p of each response token: one array per model and
    conditioning, models outer). A model None is the pool's model."""
    job = ResponseLosses(tuple(pool.model_path(m) for m in models), pool.template, answer_only)
    return run_job(pool, job, mask, what)


def mean_loss(nll: np.ndarray) -> float:
    """Mean response-token loss (NaN with no tokens)."""
    return float(nll.mean()) if len(nll) else np.nan


def response_states(pool, mask: np.ndarray, reduce: Callable[[np.ndarray], Any] | None = None,
                    what: str = "hidden states") -> Iterator[tuple[np.ndarray, list]]:
    """(positions, per row its last-layer states of the response tokens [R, d], or `reduce` of them)."""
    job = HiddenStates((pool.model_path(),), pool.template, positions="response", reduce=reduce)
    return run_job(pool, job, mask, what)


def mean_states(pool, mask: np.ndarray, spec: str | None = None,
                text: Callable[[list, list], tuple[list, list]] | None = None,
                what: str = "embedding") -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
    """(positions, per row the mean last-layer state over every token of the example, [d])."""
    job = HiddenStates((pool.model_path(spec),), pool.template, positions="all", pool="mean", text=text)
    return run_job(pool, job, mask, what)
