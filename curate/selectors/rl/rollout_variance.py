"""`rollout-variance`: the DAPO filter over the prompt ledger.

DAPO's dynamic sampling (Yu et al. 2025, arXiv 2503.14476) drops prompts whose sampled
rewards are all equal: their group-normalised advantages are all zero, so they teach
nothing. Over a prompt set with rollouts in the ledger, this strategy keeps the prompts
whose reward standard deviation (over their recorded rollouts under one model key) is
above `threshold` (default 0: any variation), and drops the others with their reason:
`zero_variance` when every rollout was right (`all_right`) or wrong (`all_wrong`), or
`below_threshold`. Prompts without rollouts are kept unless keep_unseen=False.

The per-group test used inside GRPO is `curate.train.group_filters.nonzero_variance_groups`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl

from curate.errors import BadUsage
from curate.selectors.base import FilterSelector, Selection, dropped_rows
from curate.selectors.rl.difficulty import ledger_columns, resolve_model_key


class RolloutVarianceSelector(FilterSelector):
    name: ClassVar[str] = "rollout-variance"

    def __init__(self, threshold: float = 0.0, model_key: str | None = None, keep_unseen: bool = True):
        self.threshold = threshold
        self.model_key = model_key
        self.keep_unseen = keep_unseen

    def _check_params(self) -> None:
        if self.threshold < 0:
            raise BadUsage(f"rollout-variance.threshold must be >= 0, got {self.threshold}")

    def fit(self, pool) -> RolloutVarianceSelector:
        self._prepare(pool)
        if pool.ws is None:
            raise BadUsage("rollout-variance reads the prompt ledger: it needs a dataset in a workspace")
        self.model_key_ = resolve_model_key(pool.ws, pool.ids, self.model_key)
        frame = ledger_columns(pool.ws, pool.ids, self.model_key_, ["attempts", "reward_var", "reward_mean"])
        self.attempts_ = frame["attempts"].fill_null(0).to_numpy()
        self.scores_ = np.sqrt(frame["reward_var"].cast(pl.Float64).fill_null(np.nan).to_numpy())
        self.mean_ = frame["reward_mean"].cast(pl.Float64).to_numpy()
        return self

    def select(self, budget: int | None = None) -> Selection:
        seen = self.attempts_ > 0
        std = np.nan_to_num(self.scores_, nan=0.0)
        keep = (seen & (std > self.threshold)) | (~seen & self.keep_unseen)
        drops = []
        flat = seen & ~keep & (std == 0)
        for reason, mask in (("all_right", flat & (np.nan_to_num(self.mean_) >= 0.5)),
                             ("all_wrong", flat & (np.nan_to_num(self.mean_) < 0.5)),
                             ("below_threshold", seen & ~keep & (std > 0)),
                             ("no_rollouts", ~seen & ~keep)):
            positions = np.flatnonzero(mask)
            if len(positions):
                details = [f"reward std {s:.4f} over {int(a)} rollouts" for s, a in zip(std[positions],
                                                                                         self.attempts_[positions])]
                drops.append(dropped_rows(self.ids_.gather(positions), reason, details))
        order = np.flatnonzero(keep)
        self.stats_ = {"model_key": self.model_key_, "threshold": self.threshold}
        return self._finish(order, std[order], drops, stats=self.stats_)
