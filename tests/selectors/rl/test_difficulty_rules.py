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
    assert sorted(picked.tolist()) == [1, 3]


def test_thompson_draws_follow_the_posterior():
    """Two kinds of prompts: Beta(2, 8) (mean 0.2) and Beta(8, 2) (mean 0.8), equally many. The draw
    closest to target 0.5 wins; P(a Beta(2, 8) draw lands in [0.35, 0.65]) and the same for Beta(8, 2)
    are equal by symmetry, so keeping the 10% of draws nearest 0.5 takes both kinds equally, and the
    kept draws' share of each kind matches its posterior mass near the target (hand-computed below)."""
    from scipy import stats

    rng = np.random.default_rng(1)
    n = 40_000
    alpha = np.r_[np.full(n, 2.0), np.full(n, 8.0), np.full(n, 3.0)]
    beta = np.r_[np.full(n, 8.0), np.full(n, 2.0), np.full(n, 3.0)]  # third kind: Beta(3, 3), mean 0.5
    picked = rules.thompson_pick(alpha, beta, 12_000, target=0.5, rng=rng)
    kind = picked // n
    # The kept draws are (nearly) those within some radius r of 0.5; each kind's share of them is its
    # probability mass in [0.5 - r, 0.5 + r], normalised. Find r from the count, then compare.
    def mass(a, b, r):
        return stats.beta.cdf(0.5 + r, a, b) - stats.beta.cdf(0.5 - r, a, b)
    lo, hi = 0.0, 0.5
    for _ in range(60):
        r = (lo + hi) / 2
        total = n * (mass(2, 8, r) + mass(8, 2, r) + mass(3, 3, r))
        lo, hi = (r, hi) if total < 12_000 else (lo, r)
    expected = np.array([mass(2, 8, r), mass(8, 2, r), mass(3, 3, r)])
    expected = expected / expected.sum()
    observed = np.bincount(kind, minlength=3) / len(picked)
    assert observed == pytest.approx(expected, abs=0.015)
    assert observed[2] > 0.5  # the prompts centred on the target dominate


def test_thompson_draws_candidates_first_as_mopps_does():
    """MoPPS samples ratio x B candidates at random, then keeps the B closest: a prompt outside the
    candidate batch is never picked, even when its posterior sits on the target."""
    n = 1000
    alpha, beta = np.full(n, 1e6), np.full(n, 1.0)  # every draw ~1.0: far from the target
    alpha[7], beta[7] = 5e5, 5e5  # one prompt right on 0.5
    hits = 0
    for seed in range(200):
        picked = rules.thompson_pick(alpha, beta, 4, target=0.5, rng=np.random.default_rng(seed), ratio=4)
        assert len(picked) == 4 and len(set(picked.tolist())) == 4
        hits += 7 in picked
    # P(prompt 7 is among 16 random candidates of 1000) = 16/1000; whenever it is, it wins.
    assert hits / 200 == pytest.approx(16 / 1000, abs=0.02)
    everyone = rules.thompson_pick(alpha, beta, 4, target=0.5, rng=np.random.default_rng(0))
    assert 7 in everyone  # no ratio: the whole set is ranked


def test_greso_skip_probability_is_one_minus_max_of_p_power_z_and_floor():
    n = 200_000
    rng = np.random.default_rng(0)
    state = rules.GresoState(p_easy=0.5, p_hard=0.8)
    floor = rules.GRESO_FLOOR
    easy = rules.greso_skip(np.full(n, 2), np.full(n, 1.0), state, floor=floor, rng=rng)
    hard = rules.greso_skip(np.full(n, 3), np.full(n, 0.0), state, floor=floor, rng=rng)
    deep = rules.greso_skip(np.full(n, 10), np.full(n, 1.0), state, floor=floor, rng=rng)
    fresh = rules.greso_skip(np.zeros(n, dtype=int), np.full(n, 1.0), state, floor=floor, rng=rng)
    assert easy.mean() == pytest.approx(1 - 0.5 ** 2, abs=0.01)
    assert hard.mean() == pytest.approx(1 - 0.8 ** 3, abs=0.01)
    assert deep.mean() == pytest.approx(1 - 0.01, abs=0.002)  # 0.5**10 = 0.00098 < the reference's floor 0.01
    assert not fresh.any()


def test_greso_reference_defaults():
    assert rules.GRESO_FLOOR == 0.01
    assert (rules.GRESO_STEP, rules.GRESO_P_MIN, rules.GRESO_P_MAX) == (0.01, 0.05, 0.95)
    # targets: 0.25 of zero-variance groups, split one third easy, two thirds hard
    state = rules.GresoState(0.5, 0.5)
    at_targets = rules.greso_update(state, easy_share=0.25 / 3, hard_share=0.5 / 3)
    assert (at_targets.p_easy, at_targets.p_hard) == pytest.approx((0.49, 0.49))  # share >= target: skip more
    below = rules.greso_update(state, easy_share=0.08, hard_share=0.16)
    assert (below.p_easy, below.p_hard) == pytest.approx((0.51, 0.51))


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
    assert sorted(rules.adarft_pick(difficulty, 0.5, 3, np.random.default_rng(0)).tolist()) == [1, 3, 4]


def test_adarft_breaks_ties_at_random_and_skips_unknown_difficulties():
    # |d - 0.5|: 0 for index 2; 0.25 for indices 0, 1, 4 (tied, exactly); unknown for 3 and 5.
    difficulty = np.array([0.25, 0.75, 0.5, np.nan, 0.25, np.nan])
    seen = set()
    for seed in range(40):
        picked = rules.adarft_pick(difficulty, 0.5, 2, np.random.default_rng(seed)).tolist()
        assert picked[0] == 2 and picked[1] in (0, 1, 4)
        seen.add(picked[1])
    assert seen == {0, 1, 4}  # the tie is not settled by position
    assert sorted(rules.adarft_pick(difficulty, 0.5, 10, np.random.default_rng(0)).tolist()) == [0, 1, 2, 4]
