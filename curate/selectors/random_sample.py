"""Random: a uniform sample of the pool, the baseline every other strategy must beat.

Each example's score is a hash of (seed, id) mapped to [0, 1): the sample depends only on the
seed and the ids, not on the order of the rows or on which other rows are in the pool, so a
subset of a pool keeps the same relative order. Keeping the `budget` smallest-hash rows is a
uniform sample without replacement (bottom-k sampling).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl
import polars_hash  # noqa: F401  (nchash namespace: xxh3 is stable across versions)

from curate.selectors.base import RankSelector


def hash_uniform(ids: pl.Series, seed: int) -> np.ndarray:
    """A deterministic uniform value in [0, 1) per id."""
    salted = pl.lit(f"{seed}\x1f") + pl.col("id")
    hashed = pl.DataFrame({"id": ids}).select(salted.nchash.xxh3_64().alias("h"))["h"].to_numpy()
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class RandomSelector(RankSelector):
    name: ClassVar[str] = "random"
    higher_is_better = False

    def __init__(self):
        pass

    def _score(self, pool, valid: np.ndarray) -> np.ndarray:
        return hash_uniform(pool.ids, pool.seed)
