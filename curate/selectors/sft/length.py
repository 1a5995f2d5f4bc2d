"""Length: rank examples by the length of their response, in characters.

"Long Is More for Alignment" (Zhao et al., ICML 2024, arXiv 2402.04833) shows that keeping the
examples with the longest responses is a strong SFT baseline; `keep="short"` keeps the
shortest instead. No model is needed.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl

from curate.errors import BadUsage
from curate.selectors.base import RankSelector


class LengthSelector(RankSelector):
    name: ClassVar[str] = "length"
    needs_response: ClassVar[bool] = True

    def __init__(self, keep: str = "long"):
        self.keep = keep

    def _check_params(self) -> None:
        if self.keep not in ('long', 'short'):
            raise BadUsage(f"length.keep must be 'long' or 'short', not {self.keep!r}")

    @property
    def higher_is_better(self) -> bool:  # type: ignore[override]
        return self.keep == "long"

    def _score(self, pool, valid: np.ndarray) -> np.ndarray:
        return pool.values(pl.col("response").str.len_chars().fill_null(0).cast(pl.Float64), ["response"])
