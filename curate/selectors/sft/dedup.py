"""Deduplication: exact copies by content id, and near-duplicates by embedding cosine.

Exact: two rows are copies when their content id (xxh3-128 of the canonical prompt,
response, answer and tests, `curate.catalog.ids`) is equal, whatever id column the dataset uses; the first row
in pool order is kept.

Near: rows are embedded (`curate.selectors.embeddings`: the proxy's mean-pooled hidden
states by default, or any sentence-transformers folder), from text normalised as datatrove
does before near-dedup (`normalize`: case, punctuation and whitespace do not count), the
embeddings are whitened (`transform`) and made unit length, and every pair with
cosine ≥ `threshold` is found with faiss (`IndexFlatIP` range search; an IVF index
above `approximate_above` rows, which may miss a few pairs). Rows are then visited in pool
order and a row is dropped when it is that similar to a row already kept, the greedy rule of
SemDeDup (Abbas et al., 2023) and of MinHash dedup pipelines. Each drop names the kept row
and the cosine.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import polars as pl

from curate.catalog.ids import content_digest_expr, content_fields_of, digest_key
from curate.errors import BadUsage
from curate.selectors.base import FilterSelector, Selection, dropped_rows
from curate.selectors.embeddings import embed, resolve_transform, unit_vectors

DUPLICATE = "duplicate"
NEAR_DUPLICATE = "near_duplicate"


def near_pairs(vectors: np.ndarray, threshold: float, approximate_above: int = 200_000,
               query_batch: int = 4096, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) for every pair i > j with cosine ≥ threshold, over unit rows."""
    import faiss

    n, d = vectors.shape
    if n > approximate_above:
        nlist = int(4 * math.sqrt(n))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(seed).choice(n, size=min(n, 64 * nlist), replace=False)
        index.train(vectors[np.sort(sample)])
        index.nprobe = 16
    else:
        index = faiss.IndexFlatIP(d)
    index.add(vectors)
    rows, cols, sims = [], [], []
    radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))  # faiss keeps scores > radius
    for start in range(0, n, query_batch):
        lims, values, ids = index.range_search(vectors[start:start + query_batch], radius)
        query = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64))
        earlier = ids < query
        rows.append(query[earlier])
        cols.append(ids[earlier])
        sims.append(values[earlier])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)


def greedy_keep(n: int, rows: np.ndarray, cols: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visit rows in order; drop a row similar to one already kept.

    Returns (kept mask, for each dropped row the kept row it matched, that cosine)."""
    order = np.lexsort((cols, rows))
    rows, cols, sims = rows[order], cols[order], sims[order]
    starts = np.searchsorted(rows, np.arange(n + 1))
    kept = np.ones(n, dtype=bool)
    match = np.full(n, -1, dtype=np.int64)
    cosine = np.full(n, np.nan)
    for i in np.unique(rows):
        lo, hi = starts[i], starts[i + 1]
        partners = cols[lo:hi]
        alive = kept[partners]
        if alive.any():
            best = np.argmax(np.where(alive, sims[lo:hi], -np.inf))
            kept[i] = False
            match[i], cosine[i] = partners[best], sims[lo + best]
    return kept, match, cosine


class DedupSelector(FilterSelector):
    name: ClassVar[str] = "dedup"
    uses_model: ClassVar[bool] = True

    def __init__(self, exact: bool = True, near: bool = True, threshold: float = 0.95, embedder: str | None = None,
                 normalize: bool = True, transform: str = "auto", approximate_above: int = 200_000):
        self.exact = exact
        self.near = near
        self.threshold = threshold
        self.embedder = embedder
        self.normalize = normalize
        self.transform = transform
        self.approximate_above = approximate_above

    def fit(self, pool) -> DedupSelector:
        self._prepare(pool)
        if not (self.exact or self.near):
            raise BadUsage("dedup with exact=false and near=false would do nothing")
        if not -1.0 <= self.threshold <= 1.0:
            raise BadUsage(f"dedup.threshold is a cosine in [-1, 1], got {self.threshold}")
        n = pool.rows
        self.keep_ = np.ones(n, dtype=bool)
        self.reason_ = np.full(n, None, dtype=object)
        self.detail_ = np.full(n, None, dtype=object)
        self.scores_ = np.full(n, np.nan)  # cosine to the most similar earlier kept row
        ids = pool.ids
        if self.exact:
            self._exact(pool, ids)
        if self.near and self.keep_.sum() > 1:
            self._near(pool, ids)
        return self

    def _exact(self, pool, ids: pl.Series) -> None:
        optional = content_fields_of(pool.columns())
        parts = [frame.select(pl.col("_pos").alias("p"), digest_key(content_digest_expr(optional)).alias("c"))
                 for frame in pool.iter_frames(["prompt", "response", *optional])]
        frame = pl.concat(parts).sort("p")
        first = frame.group_by("c").agg(pl.col("p").min().alias("f"))
        mapped = frame.join(first, on="c", how="left").sort("p")["f"].to_numpy()
        copies = np.flatnonzero(mapped != np.arange(pool.rows))
        self.keep_[copies] = False
        self.reason_[copies] = DUPLICATE
        originals = ids.gather(mapped[copies]).to_list() if len(copies) else []
        self.detail_[copies] = [f"same content as {original}" for original in originals]
        self.scores_[copies] = 1.0

    def _near(self, pool, ids: pl.Series) -> None:
        self.model_id_ = self.embedder or pool.model
        self.model_hash_ = pool.model_hash(self.embedder)
        candidates = np.flatnonzero(self.keep_)
        transform = resolve_transform(self.transform, pool.model_path(self.embedder))
        vectors = unit_vectors(embed(pool, self.embedder, normalize=self.normalize)[candidates], transform)
        rows, cols, sims = near_pairs(vectors, self.threshold, self.approximate_above, seed=pool.seed)
        kept, match, cosine = greedy_keep(len(candidates), rows, cols, sims)
        best = np.full(len(candidates), np.nan)
        if len(rows):  # the highest cosine to any earlier row, dropped or kept
            frame = pl.DataFrame({"r": rows, "s": sims}).group_by("r").agg(pl.col("s").max())
            best[frame["r"].to_numpy()] = frame["s"].to_numpy()
        self.scores_[candidates] = best
        dropped = np.flatnonzero(~kept)
        targets = candidates[dropped]
        self.keep_[targets] = False
        self.reason_[targets] = NEAR_DUPLICATE
        self.detail_[targets] = [f"cosine {cosine[i]:.4f} to {ids[int(candidates[match[i]])]}" for i in dropped]

    def select(self, budget: int | None = None) -> Selection:
        order = np.flatnonzero(self.keep_)
        drops = []
        for reason in (DUPLICATE, NEAR_DUPLICATE):
            where = np.flatnonzero(self.reason_ == reason)
            if len(where):
                drops.append(dropped_rows(self.ids_.gather(where), reason, list(self.detail_[where])))
        scores = pl.DataFrame({"id": self.ids_, "value": self.scores_})
        selection = self._finish(order, self.scores_[order], drops, scores=scores)
        selection.stats["threshold"] = self.threshold
        return selection
