"""Prompt-difficulty curriculum rules, as pure functions over the ledger's columns.

The `difficulty` selector, `curate loop` (through `curate.selectors.rl.schedule`) and the
pass-rate simulator (`curate.selectors.rl.sim`) call these same functions; the simulator's
learner, though, is an assumption (see its docstring), so its numbers are not evidence.

- band: keep prompts whose pass rate lies in [lo, hi] (online difficulty filtering,
  Bae et al. 2025, arXiv 2504.03380; open-r1 uses 0.1..0.9).
- thompson: MoPPS (Qu et al. 2025, arXiv 2507.04632; reference thu-rllab/MoPPS,
  recipe/ours). Each prompt's success rate has a Beta posterior (the ledger keeps it, with
  decay λ: alpha <- λ·alpha + (1-λ)·alpha0 + s). A candidate batch of `ratio` x B prompts
  is drawn uniformly at random (the reference's ts_ratio; 16 in its math scripts), one
  posterior sample is drawn per candidate, and the B candidates whose sample is closest to
  the target are kept (ties at random).
- greso: GRESO (Zheng et al. 2025, arXiv 2506.02177; reference Infini-AI-Lab/GRESO, built
  on verl). A prompt whose last z sampled groups were all right (or all wrong) is skipped
  before rollout with probability 1 - max(p^z, 0.01), p = p_easy (or p_hard); the two
  kinds keep separate streaks (a run of all-right groups is not continued by an all-wrong
  one). After every step each p moves by 0.01 within [0.05, 0.95]: down while its kind's
  share of the step's sampled groups is at or above its target, up otherwise; the targets
  split a total zero-variance target of 0.25 one third easy, two thirds hard (0.0833 and
  0.1667), p starts at 0.5.
- adarft: AdaRFT (Shi et al. 2025, arXiv 2504.05520). Difficulty is a *static* score
  estimated beforehand (a reference model's failure rate, 1 - pass rate; the paper's 0..100
  scale divided by 100) and frozen during the run; prompts without one are not ranked.
  Each step takes the B prompts whose difficulty is closest to the target T (ties at
  random), and T moves with the batch's mean reward R: T' = clip(T + η·tanh(α(R − β)),
  0, 1) (paper: η = 50 on 0..100, so 0.5 here; α = 2; β = 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

GRESO_FLOOR = 0.01  # the reference's minimum keep probability, max(p^z, 0.01)
GRESO_TARGET_ZERO_VARIANCE = 0.25  # the reference's target share of zero-variance groups
GRESO_STEP, GRESO_P_MIN, GRESO_P_MAX = 0.01, 0.05, 0.95


def closest(values: np.ndarray, target: float, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the `budget` values closest to `target`, ties broken at random; NaN values never chosen."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.flatnonzero(~np.isnan(values))
    order = np.lexsort((rng.random(len(finite)), np.abs(values[finite] - target)))
    return finite[order[:budget]]


def band_mask(pass_rate: np.ndarray, attempts: np.ndarray, lo: float, hi: float,
              keep_unseen: bool = True) -> np.ndarray:
    """Prompts whose observed pass rate is within [lo, hi]; unseen prompts are kept when asked."""
    seen = attempts > 0
    inside = seen & (pass_rate >= lo) & (pass_rate <= hi)
    return inside | (~seen & keep_unseen)


def thompson_pick(alpha: np.ndarray, beta: np.ndarray, budget: int, target: float,
                  rng: np.random.Generator, ratio: float | None = None) -> np.ndarray:
    """MoPPS: draw ratio x budget candidates at random (all prompts when ratio is None), one posterior
    sample each, and keep the `budget` candidates whose sample lies closest to `target`."""
    n = len(alpha)
    candidates = np.arange(n) if ratio is None else rng.choice(n, size=min(n, int(math.ceil(ratio * budget))),
                                                                replace=False)
    draws = rng.beta(alpha[candidates], beta[candidates])
    return candidates[closest(draws, target, budget, rng)]


@dataclass(frozen=True)
class GresoState:
    p_easy: float = 0.5
    p_hard: float = 0.5


def greso_skip(streak: np.ndarray, last_mean: np.ndarray, state: GresoState, floor: float,
               rng: np.random.Generator, success: float = 0.5) -> np.ndarray:
    """True where a prompt is skipped before rollout. `streak` counts the latest run of zero-variance
    groups of one kind; `last_mean` (the latest group's success rate) tells which kind."""
    easy = np.nan_to_num(last_mean, nan=0.0) >= success
    base = np.where(easy, state.p_easy, state.p_hard)
    keep = np.maximum(np.power(base, streak.astype(float)), floor)
    return (streak > 0) & (rng.random(len(streak)) >= keep)


def greso_update(state: GresoState, easy_share: float, hard_share: float,
                 target_easy: float = GRESO_TARGET_ZERO_VARIANCE / 3,
                 target_hard: float = GRESO_TARGET_ZERO_VARIANCE * 2 / 3, step: float = GRESO_STEP,
                 p_min: float = GRESO_P_MIN, p_max: float = GRESO_P_MAX) -> GresoState:
    """Skip more of a kind (lower p) while its share of sampled groups is at or above its target."""
    def move(p: float, share: float, target: float) -> float:
        return max(p - step, p_min) if share >= target else min(p + step, p_max)

    return replace(state, p_easy=move(state.p_easy, easy_share, target_easy),
                   p_hard=move(state.p_hard, hard_share, target_hard))


def adarft_update(target: float, mean_reward: float, eta: float = 0.5, alpha: float = 2.0, beta: float = 0.5,
                  lo: float = 0.0, hi: float = 1.0) -> float:
    """T' = clip(T + η·tanh(α(R̄ − β)), lo, hi): harder when the batch did well, easier when it did not."""
    return float(min(hi, max(lo, target + eta * math.tanh(alpha * (mean_reward - beta)))))


def adarft_pick(difficulty: np.ndarray, target: float, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the `budget` prompts whose static difficulty is closest to `target` (ties at random);
    prompts without a difficulty (NaN) are not ranked."""
    return closest(difficulty, target, budget, rng)
