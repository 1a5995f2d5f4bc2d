"""The training objectives as pure tensor functions (tested against hand-computed values).

SFT, per response token t with log-probability log p_t:
- `nll`: -log p_t, the usual cross-entropy.
- `dft`: -sg(p_t) log p_t, Dynamic Fine-Tuning (Wu et al. 2025, "On the Generalization of
  SFT: A Reinforcement Learning Perspective with Reward Rectification", arXiv 2508.05629):
  the gradient is -p_t * grad log p_t = -grad p_t, which removes the 1/p_t weighting that
  makes plain SFT an ill-posed policy gradient.
- `phi`: -sg(p_t (1 - p_t)) log p_t, CHORD-phi's token weight (Zhang et al. 2025, "On-Policy
  RL Meets Off-Policy Experts", arXiv 2508.11408), used by the hybrid GRPO+SFT term.

GRPO (Shao et al. 2024, DeepSeekMath, arXiv 2402.03300), written to match TRL 1.16's
`GRPOTrainer._compute_loss` and `_generate_and_score_completions`:
- Rewards of several functions are summed with weights, NaN (a None) ignored; a row every
  function left unscored is NaN. Advantage = r - mean of its group, divided by
  (std + 1e-4) where std is the group's (`scale_rewards="group"`), the whole batch's
  (`"batch"`, PPO-Lite), or not at all (`"none"`, Dr. GRPO, Liu et al. 2025, arXiv
  2503.20783); std is Bessel-corrected and NaN-aware; NaN advantages become 0.
- Per token: ratio = exp(log p - log p_old), clipped to [1 - eps_low, 1 + eps_high]
  (DAPO clip-higher, Yu et al. 2025, arXiv 2503.14476), loss = -min(ratio A, clip(ratio) A),
  plus beta * KL with the k3 estimator exp(r - l) - (r - l) - 1 (Schulman 2020), l = log p,
  r = log p_ref, multiplied by the ratio when `kl_bias_correction` (TRL's default
  `use_bias_correction_kl`, from DeepSeek-V3.2).
- Aggregation over a batch of N completions split in K micro-batches, mask m:
  `grpo`: sum_i (sum_t l m / max(1, sum_t m)) / N (per-sequence mean, then mean);
  `bnpo`: per micro-batch sum(l m) / max(1, sum m), divided by K;
  `dr_grpo`: sum(l m) / (N * max_completion_length);
  `dapo`: sum(l m) / max(1, tokens in the whole batch).
  With K equal micro-batches these are exactly TRL's formulas (TRL divides each micro-batch
  loss by the accumulation steps); curate's `grpo`, `dr_grpo` and `dapo` use the batch
  totals directly, so micro-batch sizes may differ without changing the objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SFT_LOSSES = ("nll", "dft")
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")
STD_EPS = 1e-4


# --- SFT -------------------------------------------------------------------------------------------------------


def sft_token_weight(logps: torch.Tensor, kind: str = "nll") -> torch.Tensor | float:
    """The detached factor each SFT loss puts on -log p_t: 1 (`nll`), p_t (`dft`), p_t (1 - p_t) (`phi`)."""
    if kind == "nll":
        return 1.0
    probs = logps.detach().exp()
    if kind == "dft":
        return probs
    if kind == "phi":
        return probs * (1.0 - probs)
    raise ValueError(f"unknown SFT loss {kind!r}; use one of nll, dft, phi")


def sft_token_loss(logps: torch.Tensor, kind: str = "nll") -> torch.Tensor:
    """Per-token SFT loss from per-token log-probabilities (`nll`, `dft`, or CHORD's `phi`)."""
    return -sft_token_weight(logps, kind) * logps


# --- GRPO: rewards and advantages ------------------------------------------------------------------------------


def nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Bessel-corrected standard deviation ignoring NaNs (NaN where fewer than two values)."""
    if dim is None:
        x, dim = x.reshape(-1), 0
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    variance = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=True)
    correction = torch.where(count > 1, count / (count - 1).clamp(min=1), torch.full_like(variance, float("nan")))
    return (variance * correction).sqrt().squeeze(dim)


def combine_rewards(per_func: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """[N, K] rewards (NaN = None) -> [N]: weighted NaN-sum; NaN where every function returned None."""
    if per_func.ndim == 1:
        per_func = per_func[:, None]
    weights = torch.ones(per_func.shape[1], dtype=per_func.dtype) if weights is None else weights
    total = (per_func * weights.to(per_func)[None, :]).nansum(dim=1)
    return total.masked_fill(torch.isnan(per_func).all(dim=1), float("nan"))


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group") -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages [N] for consecutive groups of `group_size`, and each row's group std (for zero-std stats)."""
    if scale not in SCALE_REWARDS:
        raise ValueError(f"scale_rewards must be one of {SCALE_REWARDS}, not {scale!r}")
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.view(-1, group_size)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(group_size)
    if group_size > 1:
        group_std = nanstd(grouped, dim=1).repeat_interleave(group_size)
    else:
        group_std = torch.zeros_like(rewards)
    if scale == "batch":
        std = nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
    else:
        std = group_std
    advantages = rewards - mean
    if scale != "none":
        advantages = advantages / (std + STD_EPS)
    return torch.nan_to_num(advantages, nan=0.0), group_std


# --- GRPO: the clipped surrogate and its aggregation -----------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """What the aggregation divides by: counts over the whole optimisation batch."""

    sequences: int  # completions in the batch (masked ones included, as in TRL)
    tokens: int  # loss tokens (sum of the masks) in the batch
    micro_batches: int  # K, the number of backward passes the batch is split into
    max_completion_length: int


@dataclass
class TokenLoss:
    loss: torch.Tensor  # [B, T] per-token loss
    ratio: torch.Tensor  # [B, T] exp(log p - log p_old)
    kl: torch.Tensor | None  # [B, T] k3 estimate, when beta != 0


def per_token_loss(logps: torch.Tensor, advantages: torch.Tensor, old_logps: torch.Tensor | None = None,
                   ref_logps: torch.Tensor | None = None, epsilon_low: float = 0.2, epsilon_high: float | None = None,
                   beta: float = 0.0, kl_bias_correction: bool = True) -> TokenLoss:
    """The clipped surrogate per token, plus beta * k3-KL; `old_logps=None` means on-policy (ratio 1).

    `kl_bias_correction` multiplies the KL by the (differentiable) ratio, TRL's default
    `use_bias_correction_kl` (DeepSeek-V3.2): the KL gradient becomes the unbiased
    reverse-KL gradient, and differs from the plain k3 gradient even on-policy.
    """
    epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    old_logps = logps.detach() if old_logps is None else old_logps
    ratio = torch.exp(logps - old_logps)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    loss = -torch.min(ratio * advantages, clipped * advantages)
    kl = None
    if beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta != 0 needs reference log-probabilities")
        kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1
        if kl_bias_correction:
            kl = kl * ratio
        loss = loss + beta * kl
    return TokenLoss(loss, ratio, kl)


def aggregate(loss: torch.Tensor, mask: torch.Tensor, loss_type: str, totals: Totals) -> torch.Tensor:
    """This micro-batch's share of the batch loss (sum the shares over micro-batches, then backward)."""
    mask = mask.to(loss.dtype)
    if loss_type == "grpo":
        return ((loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / max(1, totals.sequences)
    if loss_type == "bnpo":
        return (loss * mask).sum() / mask.sum().clamp(min=1.0) / max(1, totals.micro_batches)
    if loss_type == "dr_grpo":
        return (loss * mask).sum() / (max(1, totals.sequences) * totals.max_completion_length)
    if loss_type == "dapo":
        return (loss * mask).sum() / max(1, totals.tokens)
    raise ValueError(f"loss_type must be one of {LOSS_TYPES}, not {loss_type!r}")


def clip_stats(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, epsilon_low: float,
               epsilon_high: float | None) -> dict[str, float]:
    """Masked sums of TRL's clip indicators (divide by the token count for `clip_ratio/*_mean`)."""
    epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    low = (ratio < 1 - epsilon_low) & (advantages < 0)
    high = (ratio > 1 + epsilon_high) & (advantages > 0)
    mask = mask.bool()
    return {"clip_low": float((low & mask).sum()), "clip_high": float((high & mask).sum()),
            "clip_region": float(((low | high) & mask).sum())}
