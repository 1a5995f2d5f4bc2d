"""`rollout-variance`: the DAPO filter over the prompt ledger, on each prompt's latest group.

DAPO's dynamic sampling (Yu et al. 2025, arXiv 2503.14476, §3.2) drops a *fresh* group whose
rewards are all equal: its group-normalised advantages are all zero, so it teaches nothing.
The policy moves, so a prompt all-wrong early and all-right later says nothing about now; this
strategy therefore judges each prompt by its latest sampled group under one model key (not by
the pooled variance of all its rollouts): it keeps the prompts whose latest group varied and
drops the others as `all_right` or `all_wrong` (or `below_threshold` when the latest group's
reward std is above 0 but not above `threshold`). Prompts without rollouts are kept unless
keep_unseen=False.

`filter_on`: `outcome` judges the latest group on the outcome (the ledger's zero-variance
streak, which counts groups whose outcome rewards were all right or all wrong); `reward`
on the summed, shaped reward (read from the rollouts). The default is `outcome` when the
ledger key's reward specification holds a verifiable reward (math, exact, code), as DAPO
filters on accuracy; shaped sums are reported to collapse policies (verl-recipe #125).

The per-group test used inside GRPO is `curate.train.group_filters.nonzero_variance_groups`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl

from curate.catalog.ledger import KEY_SEPARATOR
from curate.catalog.workspace import query_frame
from curate.errors import BadUsage
from curate.selectors.base import FilterSelector, Selection, dropped_rows
from curate.selectors.rl.difficulty import ledger_columns, resolve_model_key

FILTER_ON = ("auto", "outcome", "reward")
VERIFIABLE = ("math", "exact", "code")  # as curate.train.rewards names them (selectors do not import train)


def default_filter_on(model_key: str) -> str:
    """`outcome` when the key's reward specification names a verifiable reward, else `reward`."""
    spec = model_key.partition(KEY_SEPARATOR)[2]
    terms = spec.split(";")[0].split("+") if spec else []
    names = {term.split("*")[-1] for term in terms}
    return "outcome" if ";outcome=" in spec or names & set(VERIFIABLE) else "reward"


def latest_groups(ws, ids: pl.Series, model_key: str) -> pl.DataFrame:
    """Per id (in order): the latest group's reward std and size (nulls for prompts without rollouts)."""
    with ws.catalog() as con:
        con.register("_ids", pl.DataFrame({"prompt_id": ids.cast(pl.String)}).with_row_index("_pos").to_arrow())
        frame = query_frame(con, """
            WITH g AS (SELECT prompt_id, run, step, stddev_pop(reward) AS std, count(reward) AS n,
                              max(created_at) AS t
                       FROM rollouts WHERE model_key = ? AND reward IS NOT NULL GROUP BY prompt_id, run, step),
                 latest AS (SELECT * FROM g QUALIFY row_number() OVER (
                                PARTITION BY prompt_id ORDER BY t DESC, step DESC NULLS LAST, run DESC) = 1)
            SELECT _pos, latest.std AS latest_std, latest.n AS latest_n FROM _ids
            LEFT JOIN latest USING (prompt_id) ORDER BY _pos""", [model_key])
        con.unregister("_ids")
    return frame


class RolloutVarianceSelector(FilterSelector):
    name: ClassVar[str] = "rollout-variance"

    def __init__(self, threshold: float = 0.0, model_key: str | None = None, keep_unseen: bool = True,
                 filter_on: str = "auto"):
        self.threshold = threshold
        self.model_key = model_key
        self.keep_unseen = keep_unseen
        self.filter_on = filter_on

    def _check_params(self) -> None:
        if self.threshold < 0:
            raise BadUsage(f"rollout-variance.threshold must be >= 0, got {self.threshold}")
        if self.filter_on not in FILTER_ON:
            raise BadUsage(f"unknown rollout-variance.filter_on {self.filter_on!r}", hint="--param filter_on=outcome|reward")

    def fit(self, pool) -> RolloutVarianceSelector:
        self._prepare(pool)
        if pool.ws is None:
            raise BadUsage("rollout-variance reads the prompt ledger: it needs a dataset in a workspace")
        self.model_key_ = resolve_model_key(pool.ws, pool.ids, self.model_key)
        self.filter_on_ = default_filter_on(self.model_key_) if self.filter_on == "auto" else self.filter_on
        frame = ledger_columns(pool.ws, pool.ids, self.model_key_, ["attempts", "zero_var_streak", "last_group_mean"])
        latest = latest_groups(pool.ws, pool.ids, self.model_key_)
        self.attempts_ = frame["attempts"].fill_null(0).to_numpy()
        self.streak_ = frame["zero_var_streak"].fill_null(0).to_numpy()
        self.last_mean_ = frame["last_group_mean"].cast(pl.Float64).to_numpy()
        self.scores_ = latest["latest_std"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        self.group_size_ = latest["latest_n"].fill_null(0).to_numpy()
        return self

    def select(self, budget: int | None = None) -> Selection:
        seen = self.attempts_ > 0
        std = np.nan_to_num(self.scores_, nan=0.0)
        flat = seen & ((self.streak_ > 0) if self.filter_on_ == "outcome" else (std == 0))
        varied = seen & ~flat & (std > self.threshold if self.filter_on_ == "reward" or self.threshold > 0 else True)
        keep = varied | (~seen & self.keep_unseen)
        easy = np.nan_to_num(self.last_mean_, nan=0.0) >= 0.5
        drops = []
        for reason, mask in (("all_right", flat & easy), ("all_wrong", flat & ~easy),
                             ("below_threshold", seen & ~flat & ~keep), ("no_rollouts", ~seen & ~keep)):
            positions = np.flatnonzero(mask)
            if len(positions):
                details = [f"latest group of {int(n)}: reward std {s:.4f}" for s, n in zip(std[positions],
                                                                                           self.group_size_[positions])]
                drops.append(dropped_rows(self.ids_.gather(positions), reason, details))
        order = np.flatnonzero(keep)
        self.stats_ = {"model_key": self.model_key_, "threshold": self.threshold, "filter_on": self.filter_on_}
        return self._finish(order, std[order], drops, stats=self.stats_)
