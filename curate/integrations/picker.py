"""The curriculum core the trainer adapters share: pick prompts from the ledger, record rewards.

`CurriculumPicker.pick(epoch)` reads the prompt ledger for the dataset's prompts and calls
`curate.selectors.rl.difficulty.pick_prompts` with the same arguments `curate select --strategy
difficulty` uses; epoch 0 draws from `numpy.random.default_rng(seed)`, so its picks equal
`curate select POOL --strategy difficulty --budget B --seed S` on the same ledger, in order.
Later epochs draw from `default_rng([seed, epoch])` (as `curate loop` seeds its rounds) and
see whatever the ledger has learned since. `LedgerRecorder` appends a trainer's rewards to the
ledger (`curate.catalog.ledger.record_rollouts`), which is what moves the next pick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

from curate.catalog.ledger import Rollout, record_rollouts
from curate.catalog.workspace import Workspace
from curate.errors import BadUsage
from curate.selectors.rl.difficulty import (CurriculumParams, ledger_view, pick_prompts, resolve_model_key,
                                            static_difficulty)


@dataclass
class CurriculumPicker:
    """Prompt positions (indices into `ids`) picked each epoch by a difficulty mode."""

    ws: Workspace
    ids: Sequence[str]  # the trainer's dataset, in its own order: position i is the trainer's index i
    mode: str = "band"
    budget: int | None = None  # prompts per epoch (None: every prompt the mode keeps)
    seed: int = 0
    model_key: str | None = None
    params: CurriculumParams = field(default_factory=CurriculumParams)

    def __post_init__(self) -> None:
        self.ids = pl.Series("id", list(self.ids), dtype=pl.String)
        if self.ids.n_unique() != len(self.ids):
            raise BadUsage("the dataset's prompt ids are not unique", hint="export it with `curate export` (ids are kept)")
        if self.budget is not None and not 0 < self.budget <= len(self.ids):
            raise BadUsage(f"budget {self.budget} must be between 1 and the {len(self.ids):,} prompts")
        self.model_key = resolve_model_key(self.ws, self.ids, self.model_key)

    @classmethod
    def from_options(cls, ws: Workspace, ids: Sequence[str], options: dict[str, Any]) -> CurriculumPicker:
        """From a flat mapping (a trainer's config section): mode, budget, seed, model_key and the
        `difficulty` strategy's parameters (lo, hi, target, ...)."""
        names = {f for f in asdict(CurriculumParams())}
        unknown = sorted(set(options) - names - {"mode", "budget", "seed", "model_key"})
        if unknown:
            raise BadUsage(f"unknown curriculum option(s): {', '.join(unknown)}",
                           hint="options: mode, budget, seed, model_key, " + ", ".join(sorted(names)))
        params = CurriculumParams(**{k: v for k, v in options.items() if k in names})
        budget = options.get("budget")
        return cls(ws, ids, str(options.get("mode", "band")), None if budget is None else int(budget),
                   int(options.get("seed", 0)), options.get("model_key"), params)

    def rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng(self.seed if epoch == 0 else [self.seed, epoch])

    def pick(self, epoch: int = 0) -> list[int]:
        view = ledger_view(self.ws, self.ids, self.model_key)
        if self.mode == "adarft":  # AdaRFT ranks by a difficulty estimated beforehand (params.reference)
            view.static_difficulty = static_difficulty(self.ws, self.ids, self.params.reference)
        order, _ = pick_prompts(self.mode, view, self.budget, self.params, self.rng(epoch))
        if self.budget is not None and len(order) < self.budget:
            raise BadUsage(f"difficulty {self.mode}: only {len(order):,} prompts qualify, fewer than the budget "
                           f"{self.budget:,}", hint="lower the budget or widen the band")
        return [int(i) for i in order]


@dataclass
class LedgerRecorder:
    """Writes a trainer's rewards to the prompt ledger, one group of completions per prompt and step."""

    ws: Workspace
    model_key: str
    run: str
    success_threshold: float = 0.5
    dataset: str | None = None

    def record(self, prompt_ids: Sequence[str], rewards: Sequence[float | None], step: int,
               completions: Sequence[str] | None = None, lengths: Sequence[int] | None = None) -> int:
        """One rollout per (prompt id, reward); completions of one prompt at one step form its group."""
        if len(prompt_ids) != len(rewards):
            raise ValueError(f"{len(prompt_ids)} prompt ids but {len(rewards)} rewards")
        seen: dict[str, int] = {}
        rollouts = []
        for i, (prompt_id, reward) in enumerate(zip(prompt_ids, rewards)):
            sample = seen.get(prompt_id, 0)
            seen[prompt_id] = sample + 1
            text = completions[i] if completions is not None else ""
            rollouts.append(Rollout(prompt_id=str(prompt_id), model_key=self.model_key, completion=text,
                                    reward=None if reward is None else float(reward),
                                    length=int(lengths[i]) if lengths is not None else len(text), run=self.run,
                                    step=step, sample_idx=sample, dataset=self.dataset))
        return record_rollouts(self.ws, rollouts, self.success_threshold)
