"""DAPO's zero-variance filter and PODS max-variance down-sampling (checked against brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from curate.train.group_filters import (max_variance_down_sample, max_variance_subset,
                                               nonzero_variance_groups, subset_variance)


def brute_force_max_variance(rewards: np.ndarray, m: int) -> float:
    return max(subset_variance(rewards, np.array(c)) for c in itertools.combinations(range(len(rewards)), m))


@pytest.mark.parametrize("kind", ["binary", "continuous", "ties", "graded"])
def test_pods_matches_brute_force(kind):
    rng = np.random.default_rng(7)
    for _trial in range(60):
        n = int(rng.integers(2, 11))
        m = int(rng.integers(1, n + 1))
        if kind == "binary":
            rewards = rng.integers(0, 2, n).astype(float)
        elif kind == "continuous":
            rewards = rng.normal(size=n)
        elif kind == "ties":
            rewards = rng.choice([0.0, 0.5, 1.0], n)
        else:
            rewards = rng.integers(0, 5, n) / 4
        chosen = max_variance_subset(rewards, m)
        assert len(chosen) == m and len(set(chosen.tolist())) == m
        assert subset_variance(rewards, chosen) == pytest.approx(brute_force_max_variance(rewards, m), abs=1e-12)


def test_pods_subset_is_top_i_plus_bottom_m_minus_i():
    rewards = np.array([0.1, 0.9, 0.5, 0.3, 0.7, 0.0])
    chosen = max_variance_subset(rewards, 4)
    order = np.argsort(rewards)
    splits = [set(order[:4 - i].tolist()) | set(order[len(order) - i:].tolist()) for i in range(5)]
    assert set(chosen.tolist()) in splits
    assert set(chosen.tolist()) == {5, 0, 1, 4}  # the two lowest and the two highest


def test_pods_binary_rewards_pick_a_balanced_subset():
    rewards = np.array([1, 1, 1, 1, 1, 1, 0, 0], dtype=float)
    chosen = max_variance_subset(rewards, 4)
    assert sorted(rewards[chosen].tolist()) == [0, 0, 1, 1]


def test_pods_is_deterministic_and_skips_nan():
    rewards = np.array([np.nan, 1.0, 0.0, 0.5, np.nan])
    assert max_variance_subset(rewards, 2).tolist() == max_variance_subset(rewards, 2).tolist()
    assert set(max_variance_subset(rewards, 2).tolist()) == {1, 2}
    assert set(max_variance_subset(rewards, 4).tolist()) >= {1, 2, 3}  # NaNs only when needed


def test_pods_batched_and_errors():
    rewards = np.array([[0, 1, 0, 1, 1], [3, 3, 3, 3, 2]], dtype=float)
    picked = max_variance_down_sample(rewards, 2)
    assert picked.shape == (2, 2)
    assert sorted(rewards[0][picked[0]].tolist()) == [0, 1] and sorted(rewards[1][picked[1]].tolist()) == [2, 3]
    with pytest.raises(ValueError):
        max_variance_subset(np.zeros(3), 4)
    with pytest.raises(ValueError):
        max_variance_down_sample(np.zeros(3), 2)


def test_zero_variance_filter():
    nan = np.nan
    rewards = np.array([[1, 1, 1, 1], [0, 0, 0, 0], [0, 1, 0, 0], [0.5, 0.5, 0.5, 0.50001],
                        [1, nan, 1, 1], [nan, nan, nan, 1], [0, nan, 1, nan]])
    assert nonzero_variance_groups(rewards).tolist() == [False, False, True, True, False, False, True]
    assert nonzero_variance_groups(np.zeros((0, 4))).tolist() == []
    with pytest.raises(ValueError):
        nonzero_variance_groups(np.zeros(4))
