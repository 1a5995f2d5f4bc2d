"""FisherSFT: choose the sentences that carry the most information about the model.

Deb et al., "FisherSFT: Data-Efficient Supervised Fine-Tuning of Language Models Using
Information Gain", ICML 2025 (arXiv 2505.14826). The last layer of a language model is a
multinomial logistic model over the pre-logit hidden state x_ij of each token, whose Fisher
information is approximated (up to the softmax curvature) by Σ_ij x_ij x_ijᵀ. FisherSFT picks
the sentence set S maximising log det(λI + Σ_{i∈S} Σ_j x_ij x_ijᵀ) greedily (a D-optimal
design), which the paper shows lowers the maximum prediction error of the fine-tuned model
compared with random selection at the same budget.

Here x_ij are the last-layer (post-norm, pre-logit) hidden states that predict the response
tokens, from `curate.lm.scoring.hidden_states`. Parameters:
- `lam`: λ, the prior precision;
- `dim`: project x_ij to this many dimensions with a seeded Gaussian random projection
  (Johnson–Lindenstrauss) first, for large models;
- `pooled`: one vector per sentence, √m·x̄_i (m tokens, x̄_i their mean), which needs d floats per
  example instead of min(m, d)·d (for very large pools). This is a *different objective* from the
  paper's: Σ_j x_ij x_ijᵀ = m·x̄_i x̄_iᵀ + Σ_j (x_ij − x̄_i)(x_ij − x̄_i)ᵀ ⪰ m·x̄_i x̄_iᵀ (Jensen), so
  pooled mode maximises a lower bound of the token-level log det that ignores how the tokens of
  a sentence spread around their mean; it favours sentences with large mean embeddings, not
  sentences with varied tokens;
- `lazy`: lazy greedy (the default) or naive greedy; both return the same sequence;
- `max_memory_gb`: refuse a pool whose features need more: the ragged per-example factors plus
  the [n, max rank, d] float32 array the greedy runs on (one long response pads every example to
  its rank).
The greedy engine (gains by the matrix determinant lemma, Woodbury updates) is
`curate.selectors.sft.logdet`.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import polars as pl

from curate.errors import BadUsage
from curate.selectors.base import BUDGET, NAN_SCORE, Selection, SetSelector, check_budget, dropped_rows
from curate.selectors.features import response_states
from curate.selectors.sft.logdet import LogDetState, compress, lazy_greedy, naive_greedy, random_projection


class FisherSelector(SetSelector):
    name: ClassVar[str] = "fisher"
    uses_model: ClassVar[bool] = True
    needs_response: ClassVar[bool] = True

    def __init__(self, lam: float = 1.0, dim: int | None = None, pooled: bool = False, lazy: bool = True,
                 batch: int = 32, max_memory_gb: float = 8.0):
        self.lam = lam
        self.dim = dim
        self.pooled = pooled
        self.lazy = lazy
        self.batch = batch
        self.max_memory_gb = max_memory_gb

    def fit(self, pool) -> FisherSelector:
        self._prepare(pool)
        if not self.lam > 0:
            raise BadUsage(f"fisher.lam must be positive, got {self.lam}")
        lm = pool.lm()
        self.model_id_, self.model_hash_ = pool.model, lm.model_hash
        width = int(lm.model.get_output_embeddings().weight.shape[1])
        if self.dim is not None and not 0 < self.dim <= width:
            raise BadUsage(f"fisher.dim must be between 1 and the model's hidden size {width}, got {self.dim}")
        k = self.dim or width
        projection = random_projection(width, k, pool.seed) if self.dim else None
        factors: list[np.ndarray | None] = [None] * pool.rows
        held, rank, examples = 0, 1, int(self.valid_.sum())
        for positions, states in response_states(pool, lm, self.valid_, what="fisher: hidden states"):
            for position, x in zip(positions, states):
                factors[position] = self._factor(x, projection)
                if factors[position] is not None:
                    held += factors[position].nbytes
                    rank = max(rank, factors[position].shape[0])
            self._check_memory(pool, held, examples, rank, k)  # refuse early: the padded array can only grow
        return self.fit_factors(factors, pool)

    def _check_memory(self, pool, ragged: int, examples: int, rank: int, width: int) -> None:
        """Refuse when the per-example factors plus the padded [n, max rank, d] float32 array exceed the limit."""
        padded = examples * rank * width * 4
        if ragged + padded > self.max_memory_gb * (1 << 30):
            raise BadUsage(f"fisher: the token features of {pool.label} need {(ragged + padded) / (1 << 30):.3g} GB, "
                           f"over fisher.max_memory_gb={self.max_memory_gb:g}: {ragged / (1 << 30):.3g} GB of "
                           f"per-example factors and {padded / (1 << 30):.3g} GB padded to {examples:,} examples x "
                           f"max rank {rank} x {width} dimensions",
                           hint="project them with --param fisher.dim=64, use --param fisher.pooled=true (a lower "
                                "bound of the objective, one row per example), cap the response length, or raise "
                                "fisher.max_memory_gb")

    def _factor(self, x: np.ndarray, projection: np.ndarray | None) -> np.ndarray | None:
        """The example's factor from its token states x [R, d]; None when there are none or they are not finite."""
        if x.shape[0] == 0 or not np.all(np.isfinite(x)):
            return None
        x = x.astype(np.float64)
        if self.pooled:
            x = x.mean(axis=0, keepdims=True) * math.sqrt(x.shape[0])
        if projection is not None:
            x = x @ projection
        return compress(x).astype(np.float32)

    def fit_factors(self, factors: list[np.ndarray | None], pool) -> FisherSelector:
        """Fit on precomputed factors (F_iᵀF_i = Σ_j x_ij x_ijᵀ), one per pool position; None = no features."""
        if not hasattr(self, "pool_"):
            self._prepare(pool)
        bad = np.array([f is None for f in factors]) & self.valid_
        self.nan_ = dropped_rows(self.ids_.filter(pl.Series(bad)), NAN_SCORE,
                                 ["hidden states are NaN or the response has no tokens"] * int(bad.sum()))
        self.usable_ = self.valid_ & ~bad
        self.positions_ = np.flatnonzero(self.usable_)
        width = next((f.shape[1] for f in factors if f is not None), 1)
        rank = max((f.shape[0] for f in factors if f is not None), default=1)
        self._check_memory(pool, sum(f.nbytes for f in factors if f is not None), len(self.positions_), rank, width)
        stacked = np.zeros((len(self.positions_), rank, width), dtype=np.float32)
        for row, position in enumerate(self.positions_):
            stacked[row, : factors[position].shape[0]] = factors[position]
        self.factors_ = stacked
        scores = np.full(pool.rows, np.nan)
        if len(self.positions_):
            scores[self.positions_] = LogDetState(stacked, self.lam).gains(np.arange(len(self.positions_)))
        self.scores_ = scores  # singleton gains: log det(I + F_i F_iᵀ / λ)
        return self

    def select(self, budget: int | None = None) -> Selection:
        if budget is None:
            raise BadUsage("fisher needs a budget", hint="pass --budget N")
        budget = check_budget(budget, len(self.positions_), self.name, self.pool_.rows)
        run = lazy_greedy if self.lazy else naive_greedy
        kwargs = {"batch": self.batch} if self.lazy else {}
        self.pool_.say("fisher: greedy log-det selection", 0, budget)
        result = run(self.factors_, budget, self.lam,
                     progress=lambda step: self.pool_.say("fisher: greedy log-det selection", step, budget), **kwargs)
        self.result_ = result
        order = self.positions_[result.order]
        rest = np.setdiff1d(self.positions_, order)
        drops = [self.nan_]
        if len(rest):
            drops.append(dropped_rows(self.ids_.gather(rest), BUDGET,
                                      [f"not among the {budget:,} greedy picks; gain alone {g:.4g}"
                                       for g in self.scores_[rest]]))
        scores = pl.DataFrame({"id": self.ids_, "value": self.scores_})
        selection = self._finish(order, result.gains, drops, scores=scores)
        selection.stats.update({"logdet": result.logdet, "gain_evaluations": result.evaluations,
                                "greedy": "lazy" if self.lazy else "naive"})
        return selection
