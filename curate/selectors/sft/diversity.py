"""Diversity: k-center greedy in embedding space.

Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set Approach",
ICLR 2018: choose centers so that every example is close to one of them (the k-center
problem). Greedy farthest-point selection (Gonzalez 1985) is a 2-approximation of the best
covering radius: start from one center, then repeatedly add the example whose distance to
its nearest center is largest. Embeddings come from `curate.selectors.embeddings` (whitened
or centered, unit length, so distances are monotone in cosine); distances are computed with faiss.

The first center is the example nearest the mean embedding (the most typical one), so the
result does not depend on the order of the rows. Ties go to the earlier row.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl

from curate.errors import BadUsage
from curate.selectors.base import (
    BUDGET,
    Selection,
    SetSelector,
    check_budget,
    dropped_rows,
)
from curate.selectors.embeddings import embed, resolve_transform, unit_vectors


def k_center_greedy(vectors: np.ndarray, budget: int, first: int | None = None,
                    block: int = 1 << 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centers in pick order, distance of each center to the earlier ones when picked,
    final distance of every row to its nearest center); squared L2 distances."""
    import faiss

    n = len(vectors)
    if first is None:
        mean = vectors.mean(axis=0, keepdims=True).astype(np.float32)
        first = int(np.argmin(faiss.pairwise_distances(mean, vectors)[0]))
    nearest = np.full(n, np.inf, dtype=np.float64)
    centers, radii = [], []
    pick, radius = first, np.inf
    for _ in range(budget):
        centers.append(pick)
        radii.append(radius)
        for start in range(0, n, block):
            distances = faiss.pairwise_distances(vectors[pick:pick + 1], vectors[start:start + block])[0]
            np.minimum(nearest[start:start + block], distances, out=nearest[start:start + block])
        nearest[pick] = 0.0
        pick = int(np.argmax(nearest))
        radius = float(nearest[pick])
    return np.array(centers, dtype=np.int64), np.array(radii), nearest


class DiversitySelector(SetSelector):
    name: ClassVar[str] = "diversity"
    uses_model: ClassVar[bool] = True
    scores_on_fit: ClassVar[bool] = False  # distances to the centers exist only once they are chosen

    def __init__(self, embedder: str | None = None, normalize: bool = False, transform: str = "auto"):
        self.embedder = embedder
        self.normalize = normalize
        self.transform = transform

    def fit(self, pool) -> DiversitySelector:
        self._prepare(pool)
        if pool.rows == 0:
            raise BadUsage("diversity: the pool is empty")
        self.model_id_ = self.embedder or pool.model
        self.model_hash_ = pool.model_hash(self.embedder)
        transform = resolve_transform(self.transform, pool.model_path(self.embedder))
        self.vectors_ = unit_vectors(embed(pool, self.embedder, normalize=self.normalize), transform)
        self.scores_ = np.full(pool.rows, np.nan)
        return self

    def select(self, budget: int | None = None) -> Selection:
        if budget is None:
            raise BadUsage("diversity needs a budget", hint="pass --budget N")
        budget = check_budget(budget, self.pool_.rows, self.name, self.pool_.rows)
        centers, radii, nearest = k_center_greedy(self.vectors_, budget)
        self.scores_ = nearest.copy()
        self.scores_[centers] = radii  # a center's score: its distance to the earlier centers when picked
        rest = np.setdiff1d(np.arange(self.pool_.rows), centers)
        drops = []
        if len(rest):
            drops.append(dropped_rows(self.ids_.gather(rest), BUDGET,
                                      [f"squared distance {d:.4g} to the nearest center" for d in nearest[rest]]))
        scores = pl.DataFrame({"id": self.ids_, "value": self.scores_})
        selection = self._finish(centers, radii, drops, scores=scores)
        selection.stats["covering_radius"] = float(np.sqrt(nearest.max())) if len(nearest) else 0.0
        return selection
