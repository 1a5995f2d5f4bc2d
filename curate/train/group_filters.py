"""Rollout-variance filters for GRPO: DAPO's dynamic sampling and PODS down-sampling.

Both act on the rewards of the G completions sampled for each prompt (a *group*):

- **Dynamic sampling** (DAPO, Yu et al. 2025, arXiv 2503.14476, §3.2): a group whose
  rewards are all equal has zero advantage for every completion, so it contributes no
  policy gradient; DAPO drops such groups ("0 < |{o_i : o_i correct}| < G") and samples
  more prompts until the batch is full. `nonzero_variance_groups` is that test for any
  reward (binary or not); rewards that are NaN (a reward function returned None) are
  ignored, and a group with fewer than two scored completions counts as zero variance.

- **PODS** (Xu et al. 2025, "Not All Rollouts are Useful: Down-Sampling Rollouts in LLM
  Reinforcement Learning", arXiv 2504.13818): generate n rollouts per prompt, train on
  the m < n whose rewards have the largest variance. The paper proves (Lemma 3.1) that a
  variance-maximising subset of size m consists of the i highest and the m - i lowest
  rewards for some i, so trying the m + 1 splits of the sorted rewards finds the optimum
  in O(n log n) instead of C(n, m) subsets. `max_variance_subset` implements it.

These are pure functions on arrays: the trainer receives them (or any callables with the
same signatures) as arguments and never imports a selector class (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import numpy as np

ATOL = 1e-9


def nonzero_variance_groups(rewards: np.ndarray, atol: float = ATOL) -> np.ndarray:
    """Which groups to keep: `rewards` is [groups, G]; True where the scored rewards are not all equal."""
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 2:
        raise ValueError(f"rewards must be [groups, G], got shape {rewards.shape}")
    scored = ~np.isnan(rewards)
    high = np.where(scored, rewards, -np.inf).max(axis=1, initial=-np.inf)
    low = np.where(scored, rewards, np.inf).min(axis=1, initial=np.inf)
    return (scored.sum(axis=1) >= 2) & (high - low > atol)


def subset_variance(rewards: np.ndarray, indices: np.ndarray) -> float:
    """Population variance of `rewards[indices]`."""
    return float(np.var(np.asarray(rewards, dtype=np.float64)[np.asarray(indices)]))


def max_variance_subset(rewards: np.ndarray, m: int) -> np.ndarray:
    """Indices (ascending) of m rewards with the largest variance, per PODS Lemma 3.1.

    Sort the rewards; for i = 0..m take the i highest and the m - i lowest, score each
    candidate's variance from prefix sums, keep the best (the smallest i on ties, so the
    result is deterministic). NaN rewards are never chosen while enough scored ones remain.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    n = rewards.shape[0]
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be 1-D, got shape {rewards.shape}")
    if not 1 <= m <= n:
        raise ValueError(f"m must be in 1..{n}, got {m}")
    scored = np.flatnonzero(~np.isnan(rewards))
    if len(scored) < m:  # not enough scored rewards: keep all of them, then unscored ones in order
        unscored = np.flatnonzero(np.isnan(rewards))
        return np.sort(np.concatenate([scored, unscored[: m - len(scored)]]))
    order = scored[np.argsort(rewards[scored], kind="stable")]
    values = rewards[order]
    k = len(values)
    prefix = np.concatenate([[0.0], np.cumsum(values)])
    prefix_sq = np.concatenate([[0.0], np.cumsum(values * values)])
    best_i, best_var = 0, -np.inf
    for i in range(m + 1):  # i highest, m - i lowest
        low = m - i
        total = prefix[low] + (prefix[k] - prefix[k - i])
        total_sq = prefix_sq[low] + (prefix_sq[k] - prefix_sq[k - i])
        mean = total / m
        var = max(0.0, total_sq / m - mean * mean)
        if var > best_var + 1e-12:
            best_i, best_var = i, var
    chosen = np.concatenate([order[: m - best_i], order[k - best_i:]])
    return np.sort(chosen)


def max_variance_down_sample(rewards: np.ndarray, m: int) -> np.ndarray:
    """PODS for a batch: `rewards` is [groups, n]; returns [groups, m] indices into each group."""
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 2:
        raise ValueError(f"rewards must be [groups, n], got shape {rewards.shape}")
    if rewards.shape[0] == 0:
        return np.zeros((0, m), dtype=np.int64)
    return np.stack([max_variance_subset(row, m) for row in rewards]).astype(np.int64)
