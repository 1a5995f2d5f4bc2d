"""`CompareConfig`: every setting of `curate compare` and its default, in one place.

Two models play different roles and are never confused: `scorer_model` is the model the
selectors score the pool with (default: the pool's proxy); `model` is the base that every
cell fine-tunes. The SFT recipe (every `SFTConfig` field but the seed) is the same for every
cell; a cell's seed drives both its selection and its SFT data order.

`recipe()` is everything that changes a cell's result apart from its strategy and seed;
its hash is part of every cell's key, so a cell is reused only under the same recipe.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import xxhash

from curate.util.stats import BOOTSTRAP_RESAMPLES
from curate.errors import BadUsage
from curate.train.evaluate import GENERATION_METRICS, METRICS
from curate.train.sft import SFTConfig

_SFT = SFTConfig()
# SFTConfig fields that do not change what a cell learns (or are set per cell).
NOT_IN_RECIPE = ("seed", "save_every", "device")


@dataclass
class CompareConfig:
    pool: str  # the dataset version every arm selects from
    eval: str  # the held-out dataset version every trained model is scored on
    model: str  # the base model that is trained (never the scorer)
    strategies: list[str]  # chains, e.g. ["random", "dedup,perplexity,random"]; random is always added
    budget: str | int = "10%"  # rows every arm keeps: a count, a fraction or a percentage of the pool
    seeds: int = 3  # seeds per arm: seed, seed + 1, ...
    steps: int = 100  # SFT optimizer steps per cell
    metric: str = "accuracy"  # accuracy | loss | reward
    reward: list[str] = field(default_factory=lambda: ["math"])  # for accuracy and reward
    scorer_model: str = "proxy"  # the model the selectors use
    params: dict[str, Any] = field(default_factory=dict)  # --param STRATEGY.NAME=VALUE
    out: str | None = None  # the comparison's name (default: POOL-compare)
    seed: int = 0  # the first seed
    template: str = "auto"  # prompt template for selection, SFT and evaluation
    # The SFT recipe, identical in every cell (defaults: `curate train sft`'s).
    lr: float = _SFT.lr
    batch_tokens: int = _SFT.batch_tokens
    grad_accum: int = _SFT.grad_accum
    warmup: int = _SFT.warmup
    lr_schedule: str = _SFT.lr_schedule
    min_lr_ratio: float = _SFT.min_lr_ratio
    weight_decay: float = _SFT.weight_decay
    loss: str = _SFT.loss
    max_length: int | None = _SFT.max_length
    lora: bool = _SFT.lora
    lora_r: int = _SFT.lora_r
    lora_alpha: int = _SFT.lora_alpha
    dtype: str = _SFT.dtype
    device: str = _SFT.device
    save_every: int = _SFT.save_every  # SFT checkpoints, so a killed cell resumes mid-training
    # Evaluation.
    max_new_tokens: int = 256  # greedy decoding, for accuracy and reward
    eval_batch_size: int = 32
    eval_base: bool = True  # also score the untrained base once, as a reference row
    # Statistics.
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES
    keep_checkpoints: bool = False  # keep each cell's SFT checkpoint (optimizer state) after it is done
    resume: bool = False  # require finished cells to continue from (a plain rerun resumes too)

    def check(self) -> None:
        if self.metric not in METRICS:
            raise BadUsage(f"unknown metric {self.metric!r}", hint="--metric " + "|".join(METRICS))
        if self.seeds < 1:
            raise BadUsage(f"--seeds must be >= 1, got {self.seeds}")
        if self.metric in GENERATION_METRICS and not self.reward:
            raise BadUsage(f"--metric {self.metric} needs a reward", hint="e.g. --reward math")
        if self.max_new_tokens < 1 or self.eval_batch_size < 1 or self.bootstrap_resamples < 1:
            raise BadUsage("max_new_tokens, eval_batch_size and bootstrap_resamples must be >= 1")
        if not self.strategies:
            raise BadUsage("compare needs at least one --strategy", hint="e.g. --strategy dedup,fisher")
        self.sft_config(self.seed).check()

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def sft_config(self, seed: int) -> SFTConfig:
        names = {f.name for f in fields(SFTConfig)}
        return SFTConfig(**{k: v for k, v in asdict(self).items() if k in names and k != "seed"}, seed=seed)

    def eval_metrics(self, has_response: bool) -> list[str]:
        if self.metric == "loss":
            return ["loss"]
        return ["accuracy", "reward"] + (["loss"] if has_response else [])

    def recipe(self, budget_rows: int, scorer_identity: str) -> dict[str, Any]:
        """Everything that changes a cell's result besides its strategy, seed, pool, eval and base."""
        sft = {k: v for k, v in asdict(self.sft_config(0)).items() if k not in NOT_IN_RECIPE}
        generate = self.metric != "loss"
        return {"budget": budget_rows, "params": {k: str(v) for k, v in sorted(self.params.items())},
                "scorer": scorer_identity, "template": self.template, "sft": sft,
                "eval": {"generate": generate, "reward": list(self.reward) if generate else None,
                         "max_new_tokens": self.max_new_tokens if generate else None}}


def recipe_hash(recipe: dict[str, Any]) -> str:
    return xxhash.xxh3_64_hexdigest(json.dumps(recipe, sort_keys=True, default=str).encode())
