"""Model-based per-example scorers whose scores are cached in the catalog.

The scores of a `ModelScorer` depend only on the example, the model and the parameters
listed in `score_params`, so they are stored under a scorer key (scorer + model hash +
params hash) and a later selection on the same dataset version reuses them, computing only
the rows it has not seen. Fresh scores are committed in chunks as they are computed (`_emit`,
`Pool.score_writer`), so a run that is killed keeps what it committed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from curate.catalog.scores import scorer_key
from curate.selectors.base import RankSelector


class ModelScorer(RankSelector):
    uses_model: ClassVar[bool] = True
    needs_response: ClassVar[bool] = True
    cacheable: ClassVar[bool] = True
    score_params: ClassVar[tuple[str, ...]] = ()  # constructor parameters that change the score

    def key_params(self, pool) -> dict[str, Any]:
        return {"template": pool.template, **{p: getattr(self, p) for p in self.score_params}}

    def fit(self, pool) -> ModelScorer:
        self._prepare(pool)
        self.model_id_ = pool.model
        self.model_hash_ = pool.model_hash()
        self.scorer_key_ = scorer_key(self.name, self.model_hash_, self.key_params(pool))
        scores, found = pool.cached_scores(self.scorer_key_)
        todo = self.valid_ & ~found
        self.cached_rows_ = int((self.valid_ & found).sum())
        if todo.any():
            self._writer = pool.score_writer(self.scorer_key_, self.name, self.model_hash_, self.key_params(pool))
            self._emitted = np.zeros(pool.rows, dtype=bool)
            try:
                fresh = self._score(pool, todo)
                rest = np.flatnonzero(todo & ~self._emitted)  # a `_score` that does not stream
                if len(rest):
                    self._writer.add(rest, fresh[rest])
                self._writer.flush()
            finally:
                del self._writer, self._emitted
            scores[todo] = fresh[todo]
        scores[~self.valid_] = np.nan
        self.scores_ = scores
        return self

    def _emit(self, positions: np.ndarray, values: np.ndarray) -> None:
        """Hand final scores of some rows to the chunked commit (a no-op outside `fit`)."""
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.add(positions, values)
            self._emitted[positions] = True

    def _stream_scores(self, pool, valid: np.ndarray, models, answer_only, what: str, score) -> np.ndarray:
        """Scores by position from `score(losses of one row)`, emitted a batch of rows at a time."""
        from curate.selectors.features import response_losses

        out = np.full(pool.rows, np.nan)
        for positions, losses in response_losses(pool, valid, models, answer_only, what):
            values = np.array([score(row) for row in losses], dtype=np.float64)
            out[positions] = values
            self._emit(positions, values)
        return out
