"""The settings of a GRPO run (`curate train grpo`), in one dataclass both GRPO modules import.

Its defaults are the CLI's defaults: `curate train grpo --help` reads them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from curate.errors import BadUsage
from curate.lm.templates import TEMPLATES
from curate.train.losses import LOSS_TYPES, SCALE_REWARDS
from curate.train.optim import check_lr_settings


@dataclass
class GRPOConfig:
    steps: int = 100  # rollout rounds; each makes num_iterations optimizer steps
    prompts_per_step: int = 8
    num_generations: int = 8  # G (PODS: n, the completions sampled per prompt)
    pods_m: int | None = None  # PODS: train on m of the n completions of each prompt
    max_prompt_length: int | None = 512  # longer prompts (or ones leaving no room to complete) are skipped
    max_completion_length: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    generation_batch_size: int | None = None  # sequences per generate call (None: all at once)
    lr: float = 1e-6
    warmup: int = 0
    min_lr_ratio: float = 0.0
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    batch_tokens: int = 16384  # tokens per forward/backward chunk
    loss_type: str = "dapo"  # grpo | bnpo | dr_grpo | dapo (TRL's default is dapo)
    scale_rewards: str = "group"  # group | batch | none
    epsilon: float = 0.2
    epsilon_high: float | None = None  # None: epsilon (DAPO suggests 0.28)
    beta: float = 0.0  # KL weight to the reference (k3); 0 loads no reference
    kl_bias_correction: bool = True  # KL times the ratio (TRL's use_bias_correction_kl default)
    num_iterations: int = 1  # mu: optimizer steps per batch of rollouts
    mask_truncated_completions: bool = True
    dynamic_sampling: bool = False  # drop zero-variance groups and refill
    filter_on: str = "auto"  # outcome | reward: what dynamic sampling tests (auto: outcome when a verifiable reward is given)
    outcome_reward: str | None = "auto"  # the reward deciding success (auto: the first of math/exact/code among several)
    success_threshold: float = 0.5  # a rollout succeeds when its outcome reward is >= this (ledger counts, curricula)
    decay: float = 1.0  # MoPPS's posterior decay λ in the ledger (1: plain counts)
    max_refills: int = 3  # extra sampling rounds per step at most
    sft_weight: float = 0.0  # CHORD mu at step 0 (0 disables the SFT term)
    sft_weight_end: float | None = None  # mu at the last step (None: constant)
    sft_schedule: str = "constant"  # constant | linear | cosine | chord (warm-up, then cosine decay, as CHORD)
    sft_warmup: int = 0  # chord schedule: steps of linear warm-up from 0 to sft_weight (CHORD's mu_warmup_steps)
    sft_decay_steps: int | None = None  # chord schedule: steps of cosine decay to sft_weight_end (None: the rest)
    sft_batch: int | None = None  # expert examples per step from the --sft-data set (None: prompts_per_step)
    sft_loss: str = "nll"  # nll | phi (CHORD-phi token weights)
    reward_weights: tuple[float, ...] | None = None
    template: str = "auto"
    seed: int = 0
    save_every: int = 50
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: str = "all-linear"
    dtype: str = "auto"
    device: str = "auto"
    model_key: str | None = None  # the policy's ledger key (None: the starting model's hash); + "#" + the rewards
    ledger_key: str | None = None  # the whole ledger key, used as it is (the loop passes the one it reads)
    run_name: str | None = None  # ledger run name (None: from OUT, the model and these settings)

    def check(self) -> None:
        """Raise BadUsage naming the first bad field and how to fix it."""
        for name in ("steps", "prompts_per_step", "max_completion_length", "batch_tokens", "num_iterations"):
            if getattr(self, name) < 1:
                raise BadUsage(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_generations < 2:
            raise BadUsage(f"num_generations must be >= 2 (GRPO compares completions), got {self.num_generations}",
                           hint="e.g. --num-generations 8")
        if self.pods_m is not None and not 2 <= self.pods_m < self.num_generations:
            raise BadUsage(f"pods_m must be in 2..{self.num_generations - 1} (below num_generations), "
                           f"got {self.pods_m}", hint="--pods-m M keeps M of the --num-generations completions")
        if self.loss_type not in LOSS_TYPES:
            raise BadUsage(f"unknown loss_type {self.loss_type!r}", hint="--loss-type " + "|".join(LOSS_TYPES))
        if self.scale_rewards not in SCALE_REWARDS:
            raise BadUsage(f"unknown scale_rewards {self.scale_rewards!r}", hint="--scale-rewards group|batch|none")
        if self.epsilon < 0 or (self.epsilon_high is not None and self.epsilon_high < 0) or self.beta < 0:
            raise BadUsage("epsilon, epsilon_high and beta must be >= 0")
        if self.temperature <= 0:
            raise BadUsage(f"temperature must be > 0 for sampling, got {self.temperature}")
        if not 0 <= self.sft_weight <= 1 or not 0 <= (self.sft_weight_end or 0) <= 1:
            raise BadUsage("sft_weight and sft_weight_end must be in [0, 1]")
        if self.sft_schedule not in ("constant", "linear", "cosine", "chord") or self.sft_loss not in ("nll", "phi"):
            raise BadUsage("sft_schedule must be constant|linear|cosine|chord and sft_loss nll|phi")
        if self.sft_warmup < 0 or (self.sft_decay_steps is not None and self.sft_decay_steps < 0) or \
                (self.sft_batch is not None and self.sft_batch < 1):
            raise BadUsage("sft_warmup and sft_decay_steps must be >= 0, sft_batch >= 1")
        if self.template not in TEMPLATES:
            raise BadUsage(f"unknown template {self.template!r}", hint="templates: " + ", ".join(TEMPLATES))
        if self.filter_on not in ("auto", "outcome", "reward"):
            raise BadUsage(f"unknown filter_on {self.filter_on!r}", hint="--filter-on outcome|reward")
        if not 0 < self.decay <= 1:
            raise BadUsage(f"decay must be in (0, 1], got {self.decay}", hint="--param decay=0.9 (1 keeps plain counts)")
        if self.max_refills < 0 or self.save_every < 0:
            raise BadUsage("max_refills and save_every must be >= 0")
        check_lr_settings(self.lr, self.warmup, self.min_lr_ratio, self.lr_schedule)
