"""The curriculum rules against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curate.selectors.rl import difficulty_rules as rules


def test_band_keeps_rates_inside_and_unseen_prompts():
    rate = np.array([0.0, 0.1, 0.5, 0.9, 1.0, 0.0])
    attempts = np.array([8, 8, 8, 8, 8, 0])
    assert rules.band_mask(rate, attempts, 0.1, 0.9).tolist() == [False, True, True, True, False, True]
    assert rules.band_mask(rate, attempts, 0.1, 0.9, keep_unseen=False).tolist() == [False, True, True, True,
                                                                                      False, False]


def test_thompson_picks_draws_closest_to_target():
    # Posteriors so concentrated that the draws are essentially their means.
    alpha = np.array([1e6, 5e5, 9e5, 2e5])
    beta = np.array([1.0, 5e5, 1e5, 8e5])  # means ~1.0, 0.5, 0.9, 0.2
    picked = rules.thompson_pick(alpha, beta, 2, target=0.45, rng=np.random.default_rng(0))
    assert picked.tolist() == [1, 3]


def test_thompson_draws_follow_the_posterior():
    rng = np.random.default_rng(1)
    alpha, beta = np.full(20_000, 3.0), np.full(20_000, 7.0)
    draws_near = rules.thompson_pick(alpha, beta, 10_000, target=0.3, rng=rng)
    assert len(set(draws_near.tolist())) == 10_000  # indices, no repeats


def test_greso_skip_probability_is_one_minus_max_of_p_power_z_and_floor():
    n = 200_000
    rng = np.random.default_rng(0)
    state = rules.GresoState(p_easy=0.5, p_hard=0.8)
    easy = rules.greso_skip(np.full(n, 2), np.full(n, 1.0), state, floor=0.05, rng=rng)
    hard = rules.greso_skip(np.full(n, 3), np.full(n, 0.0), state, floor=0.05, rng=rng)
    deep = rules.greso_skip(np.full(n, 10), np.full(n, 1.0), state, floor=0.05, rng=rng)
    fresh = rules.greso_skip(np.zeros(n, dtype=int), np.full(n, 1.0), state, floor=0.05, rng=rng)
    assert easy.mean() == pytest.approx(1 - 0.5 ** 2, abs=0.01)
    assert hard.mean() == pytest.approx(1 - 0.8 ** 3, abs=0.01)
    assert deep.mean() == pytest.approx(1 - 0.05, abs=0.01)  # 0.5**10 < floor
    assert not fresh.any()


def test_greso_update_moves_each_p_toward_its_target():
    state = rules.GresoState(p_easy=0.5, p_hard=0.5)
    after = rules.greso_update(state, easy_share=0.3, hard_share=0.01, target_easy=0.1, target_hard=0.1)
    assert after.p_easy == pytest.approx(0.49) and after.p_hard == pytest.approx(0.51)
    low = rules.greso_update(rules.GresoState(0.05, 0.95), 0.9, 0.0, 0.1, 0.1)
    assert (low.p_easy, low.p_hard) == (0.05, 0.95)


def test_adarft_target_update_matches_the_formula():
    assert rules.adarft_update(0.4, 0.8, eta=0.5, alpha=2.0, beta=0.5) == pytest.approx(
        0.4 + 0.5 * math.tanh(2.0 * 0.3))
    assert rules.adarft_update(0.4, 0.5) == pytest.approx(0.4)
    assert rules.adarft_update(0.9, 1.0, eta=0.5) == 1.0  # clipped
    assert rules.adarft_update(0.1, 0.0, eta=0.5) == 0.0


def test_adarft_picks_closest_difficulties():
    difficulty = np.array([0.9, 0.45, 0.1, 0.55, 0.5])
    assert sorted(rules.adarft_pick(difficulty, 0.5, 3).tolist()) == [1, 3, 4]
