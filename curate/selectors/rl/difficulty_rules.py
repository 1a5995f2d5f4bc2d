"""Prompt-difficulty curriculum rules, as pure functions over the ledger's columns.

The `difficulty` selector and the pass-rate simulator (`curate.selectors.rl.sim`) both
call these, so the simulator measures exactly the code that runs on real models.

- band: keep prompts whose pass rate lies in [lo, hi] (online difficulty filtering,
  Bae et al. 2025, arXiv 2504.03380; open-r1 uses 0.1..0.9).
- thompson: MoPPS (Qu et al. 2025, arXiv 2507.04632). Each prompt's pass rate has a
  Beta posterior (kept by the ledger, with decay λ); draw one sample per prompt and
  keep the B prompts whose sample is closest to the target pass rate.
- greso: GRESO (Zheng et al. 2025, arXiv 2506.02177). A prompt whose last z sampled
  groups all had zero reward variance is skipped before rollout with probability
  1 - max(p^z, floor); p is kept separately for all-right ("easy") and all-wrong
  ("hard") streaks and moves by a fixed step each round toward a target share of
  zero-variance groups, within [p_min, p_max] (the paper's code uses step 0.01 and
  [0.05, 0.95]).
- adarft: AdaRFT (Shi et al. 2025, arXiv 2504.05520). A target difficulty T moves with
  the batch's mean reward R: T' = clip(T + η·tanh(α(R − β)), lo, hi), and the batch is
  the B prompts with difficulty closest to T. Difficulty is 1 - pass rate here (the
  paper's 0..100 scale divided by 100, so its η = 50 becomes 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np


def band_mask(pass_rate: np.ndarray, attempts: np.ndarray, lo: float, hi: float,
              keep_unseen: bool = True) -> np.ndarray:
    """Prompts whose observed pass rate is within [lo, hi]; unseen prompts are kept when asked."""
    seen = attempts > 0
    inside = seen & (pass_rate >= lo) & (pass_rate <= hi)
    return inside | (~seen & keep_unseen)


def thompson_pick(alpha: np.ndarray, beta: np.ndarray, budget: int, target: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Indices of the `budget` prompts whose posterior draw lies closest to `target` (ties by index)."""
    draws = rng.beta(alpha, beta)
    return np.argsort(np.abs(draws - target), kind="stable")[:budget]


@dataclass(frozen=True)
class GresoState:
    p_easy: float = 0.5
    p_hard: float = 0.5


def greso_skip(streak: np.ndarray, last_mean: np.ndarray, state: GresoState, floor: float,
               rng: np.random.Generator, success: float = 0.5) -> np.ndarray:
    """True where a prompt is skipped this round (before any rollout is spent on it)."""
    easy = np.nan_to_num(last_mean, nan=0.0) >= success
    base = np.where(easy, state.p_easy, state.p_hard)
    keep = np.maximum(np.power(base, streak.astype(float)), floor)
    return (streak > 0) & (rng.random(len(streak)) >= keep)


def greso_update(state: GresoState, easy_share: float, hard_share: float, target_easy: float,
                 target_hard: float, step: float = 0.01, p_min: float = 0.05, p_max: float = 0.95) -> GresoState:
    """Skip more of a kind (lower p) while its share of sampled groups is at or above its target."""
    def move(p: float, share: float, target: float) -> float:
        return max(p - step, p_min) if share >= target else min(p + step, p_max)

    return replace(state, p_easy=move(state.p_easy, easy_share, target_easy),
                   p_hard=move(state.p_hard, hard_share, target_hard))


def adarft_update(target: float, mean_reward: float, eta: float = 0.5, alpha: float = 2.0, beta: float = 0.5,
                  lo: float = 0.0, hi: float = 1.0) -> float:
    """T' = clip(T + η·tanh(α(R̄ − β)), lo, hi): harder when the batch did well, easier when it did not."""
    return float(min(hi, max(lo, target + eta * math.tanh(alpha * (mean_reward - beta)))))


def adarft_pick(difficulty: np.ndarray, target: float, budget: int) -> np.ndarray:
    """Indices of the `budget` prompts whose difficulty is closest to `target` (ties by index)."""
    return np.argsort(np.abs(difficulty - target), kind="stable")[:budget]
