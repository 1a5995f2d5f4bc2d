"""Model-based per-example scorers whose scores are cached in the catalog.

The scores of a `ModelScorer` depend only on the example, the model and the parameters
listed in `score_params`, so they are stored under a scorer key (scorer + model hash +
params hash) and a later selection on the same dataset version reuses them, computing only
the rows it has not seen.
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
            fresh = self._score(pool, todo)
            scores[todo] = fresh[todo]
            positions = np.flatnonzero(todo)
            pool.store_scores(self.scorer_key_, self.name, self.model_hash_, self.key_params(pool), positions,
                              scores[positions])
        scores[~self.valid_] = np.nan
        self.scores_ = scores
        return self
