"""DoReMi and the other weight rules against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from curate.selectors import mixing_rules as rules


def test_excess_loss_clips_per_token_and_averages_over_tokens():
    proxy = [np.array([2.0, 1.0]), np.array([3.0])]
    reference = [np.array([1.0, 1.5]), np.array([1.0])]
    # clipped excess: 1.0, 0.0, 2.0 over 3 tokens
    assert rules.excess_loss(proxy, reference) == pytest.approx(1.0)
    assert rules.excess_loss([], []) == 0.0


def test_doremi_step_matches_hand_computation():
    alpha = np.array([0.25, 0.25, 0.25, 0.25])
    excess = np.array([0.0, 1.0, 0.0, 2.0])
    raised = alpha * np.exp(excess)  # [0.25, 0.25e, 0.25, 0.25e^2]
    expected = (1 - 1e-3) * raised / raised.sum() + 1e-3 / 4
    got = rules.doremi_step(alpha, excess, eta=1.0, smoothing=1e-3)
    assert got == pytest.approx(expected)
    e = np.e
    assert got[3] == pytest.approx((1 - 1e-3) * e**2 / (2 + e + e**2) + 2.5e-4)
    assert got.sum() == pytest.approx(1.0)


def test_doremi_average_over_steps():
    state = rules.DoReMiState.uniform(2, eta=1.0, smoothing=0.0)
    first = state.update(np.array([0.0, np.log(3.0)]))   # -> [0.25, 0.75]
    second = state.update(np.array([0.0, 0.0]))          # unchanged
    assert first == pytest.approx([0.25, 0.75]) and second == pytest.approx([0.25, 0.75])
    assert state.average == pytest.approx([0.25, 0.75])


def test_doremi_moves_toward_domains_with_highest_excess_loss():
    rng = np.random.default_rng(0)
    state = rules.DoReMiState.uniform(4)
    true_excess = np.array([0.05, 0.1, 0.4, 0.8])
    for _ in range(50):
        state.update(np.maximum(true_excess + rng.normal(0, 0.05, 4), 0))
    avg = state.average
    assert np.all(np.diff(avg) > 0), avg
    assert avg[3] > 0.25 > avg[0]


def test_progress_weights_favour_domains_still_improving():
    w = rules.progress_weights(np.array([0.0, 0.02, -0.1, 0.3]), temperature=0.1, smoothing=0.0)
    assert w.argmax() == 3 and w[0] == pytest.approx(w[2])  # negative gain counts as none
    assert w.sum() == pytest.approx(1.0)


def test_static_weights_normalise_and_reject_all_zero():
    assert rules.static_weights({"a": 2, "b": 1}, ["a", "b", "c"]) == pytest.approx([2 / 3, 1 / 3, 0])
    with pytest.raises(ValueError):
        rules.static_weights({"a": 0}, ["a"])


def test_allocate_rounds_by_largest_remainder_and_redistributes_capped_domains():
    assert rules.allocate(np.array([0.5, 0.3, 0.2]), 10, np.array([100, 100, 100])).tolist() == [5, 3, 2]
    assert rules.allocate(np.array([1 / 3] * 3), 10, np.array([100, 100, 100])).sum() == 10
    capped = rules.allocate(np.array([0.8, 0.1, 0.1]), 100, np.array([20, 500, 500]))
    assert capped.tolist() == [20, 40, 40]
    assert rules.allocate(np.array([0.5, 0.5]), 50, np.array([10, 5])).tolist() == [10, 5]
