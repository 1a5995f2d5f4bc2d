"""Perplexity: exp of the mean loss of the response tokens given the prompt, under a model.

The classic quality filter of pretraining and SFT pipelines (e.g. Wenzek et al. 2020, CCNet;
Ankner et al. 2024, "Perplexed by Perplexity"): with `keep="low"` (the default) the examples
the model finds most plausible are kept, which removes garbled or off-distribution responses;
`keep="high"` keeps the hardest ones instead.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from curate.errors import BadUsage
from curate.selectors.features import mean_nll
from curate.selectors.scored import ModelScorer


class PerplexitySelector(ModelScorer):
    name: ClassVar[str] = "perplexity"

    def __init__(self, keep: str = "low"):
        self.keep = keep

    def _check_params(self) -> None:
        if self.keep not in ('low', 'high'):
            raise BadUsage(f"perplexity.keep must be 'low' or 'high', not {self.keep!r}")

    @property
    def higher_is_better(self) -> bool:  # type: ignore[override]
        return self.keep == "high"

    def _score(self, pool, valid: np.ndarray) -> np.ndarray:
        lm = pool.lm()
        with np.errstate(over="ignore"):
            return np.exp(mean_nll(pool, lm, valid, what="perplexity"))
