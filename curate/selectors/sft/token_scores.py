"""Per-token arrays for token cleaning: storage by pool position, top-k% masks, Arrow columns."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa


class Ragged:
    """One 1-D array per pool position (some positions may have none)."""

    def __init__(self, rows: int):
        self.rows = rows
        self._arrays: dict[int, np.ndarray] = {}

    def put(self, position: int, values: np.ndarray) -> None:
        self._arrays[int(position)] = values

    def get(self, position: int) -> np.ndarray:
        return self._arrays[int(position)]

    def has(self, position: int) -> bool:
        return int(position) in self._arrays


def top_fraction(scores: Sequence[np.ndarray], ratio: float, per_example: bool = False) -> list[np.ndarray]:
    """Keep masks (uint8) selecting the ⌊ratio · n⌋ highest scores, over all arrays together or
    within each one. NaN scores rank last; ties go to the earlier token."""
    if per_example:
        return [_top(values, math.floor(ratio * len(values))) for values in scores]
    lengths = np.array([len(v) for v in scores], dtype=np.int64)
    flat = np.concatenate([np.asarray(v, dtype=np.float64) for v in scores]) if len(scores) else np.zeros(0)
    keep = _top(flat, math.floor(ratio * len(flat)))
    return np.split(keep, np.cumsum(lengths)[:-1]) if len(scores) else []


def _top(values: np.ndarray, count: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    key = np.where(np.isnan(values), np.inf, -values)
    order = np.argsort(key, kind="stable")
    mask = np.zeros(len(values), dtype=np.uint8)
    mask[order[:count]] = 1
    return mask


def list_column(name: str, arrays: Sequence[np.ndarray], dtype: pa.DataType) -> pl.Series:
    """A polars List column from numpy arrays, built from offsets (no Python object per element)."""
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32 if lengths.sum() < 2**31 else np.int64)
    flat = np.concatenate(arrays) if len(arrays) else np.zeros(0)
    values = pa.array(flat.astype(dtype.to_pandas_dtype()), type=dtype)
    array_type = pa.ListArray if offsets.dtype == np.int32 else pa.LargeListArray
    return pl.Series(name, pl.from_arrow(array_type.from_arrays(pa.array(offsets), values)))


def masks_frame(ids: pl.Series, masks: Sequence[np.ndarray]) -> pl.DataFrame:
    """id, token_mask (List[UInt8]) for the examples of a selection."""
    column = list_column("token_mask", masks, pa.uint8())
    return pl.DataFrame({"id": ids, "token_mask": column.cast(pl.List(pl.UInt8))})
