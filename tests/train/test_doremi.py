"""DoReMi's weight update (Xie et al. 2023, Algorithm 1) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from curate.train import doremi
from curate.train.doremi import DoReMiConfig, doremi_weights
from curate.train.proxy import ProxyConfig
from tests.rl_helpers import prompt_set

TINY_PROXY = ProxyConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64, steps=3, batch_tokens=256, seq_len=64)


def test_excess_loss_clips_per_token_and_averages_over_tokens():
    proxy = [np.array([2.0, 1.0]), np.array([3.0])]
    reference = [np.array([1.0, 1.5]), np.array([1.0])]
    # clipped excess: 1.0, 0.0, 2.0 over 3 tokens
    assert doremi.excess_loss(proxy, reference) == pytest.approx(1.0)
    assert doremi.excess_loss([], []) == 0.0


def test_doremi_step_matches_hand_computation():
    alpha = np.array([0.25, 0.25, 0.25, 0.25])
    excess = np.array([0.0, 1.0, 0.0, 2.0])
    raised = alpha * np.exp(excess)  # [0.25, 0.25e, 0.25, 0.25e^2]
    expected = (1 - 1e-3) * raised / raised.sum() + 1e-3 / 4
    got = doremi.doremi_step(alpha, excess, eta=1.0, smoothing=1e-3)
    assert got == pytest.approx(expected)
    e = np.e
    assert got[3] == pytest.approx((1 - 1e-3) * e**2 / (2 + e + e**2) + 2.5e-4)
    assert got.sum() == pytest.approx(1.0)


def test_doremi_average_over_steps():
    state = doremi.DoReMiState.uniform(2, eta=1.0, smoothing=0.0)
    first = state.update(np.array([0.0, np.log(3.0)]))   # -> [0.25, 0.75]
    second = state.update(np.array([0.0, 0.0]))          # unchanged
    assert first == pytest.approx([0.25, 0.75]) and second == pytest.approx([0.25, 0.75])
    assert state.average == pytest.approx([0.25, 0.75])


def test_doremi_moves_toward_domains_with_highest_excess_loss():
    rng = np.random.default_rng(0)
    state = doremi.DoReMiState.uniform(4)
    true_excess = np.array([0.05, 0.1, 0.4, 0.8])
    for _ in range(50):
        state.update(np.maximum(true_excess + rng.normal(0, 0.05, 4), 0))
    avg = state.average
    assert np.all(np.diff(avg) > 0), avg
    assert avg[3] > 0.25 > avg[0]


def test_doremi_trains_a_proxy_against_the_reference_with_the_tested_rules(ws, tmp_path, monkeypatch):
    lambdas, real = [], doremi.excess_loss

    def spy(proxy_losses, reference_losses):
        lambdas.append(real(proxy_losses, reference_losses))
        return lambdas[-1]

    monkeypatch.setattr(doremi, "excess_loss", spy)
    version = prompt_set(ws, tmp_path, n=20)
    texts = [["1 + 1 = 2 " * 20] * 10, ["the quick brown fox " * 20] * 10]
    weights, history, stats = doremi_weights(ws, version, texts, DoReMiConfig(steps=4, seq_len=32, seqs_per_domain=2),
                                             TINY_PROXY)
    assert len(history) == 4 and weights.shape == (2,)
    assert weights.sum() == pytest.approx(1.0) and np.all(weights > 0)
    assert np.allclose(weights, np.mean(history, axis=0))
    assert stats["reference"].endswith(tuple("0123456789abcdef"))
    # each step's weights are doremi_step of the previous ones and of excess_loss per domain
    assert len(lambdas) == 4 * 2
    alpha = np.full(2, 0.5)
    for step, got in enumerate(history):
        alpha = doremi.doremi_step(alpha, np.array(lambdas[2 * step:2 * step + 2]))
        assert got == pytest.approx(alpha)
