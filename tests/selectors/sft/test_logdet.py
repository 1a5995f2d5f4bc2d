"""The log-det greedy engine of FisherSFT: gains, Woodbury updates, naive = lazy, brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from curate.selectors.sft.logdet import (
    LogDetState,
    compress,
    lazy_greedy,
    logdet_of,
    naive_greedy,
    pad_factors,
    random_projection,
)


def _factors(seed: int, n: int, tokens: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = rng.lognormal(0.0, 1.0, size=(n, 1, d))  # anisotropic sentences: the design matters
    return (rng.standard_normal((n, tokens, d)) * scales).astype(np.float32)


def test_gain_is_the_matrix_determinant_lemma_by_hand():
    # One sentence with tokens (1, 0) and (1, 1), λ = 2: V = 2I + [[2, 1], [1, 1]] = [[4, 1], [1, 3]].
    factors = np.array([[[1.0, 0.0], [1.0, 1.0]]])
    state = LogDetState(factors, lam=2.0)
    expected = math.log(4 * 3 - 1) - math.log(4)  # log det V − log det(2I)
    assert state.gains(np.array([0]))[0] == pytest.approx(expected, rel=1e-12)
    assert state.add(0) == pytest.approx(expected, rel=1e-12)
    assert state.logdet == pytest.approx(math.log(11), rel=1e-12)
    np.testing.assert_allclose(state.v_inv, np.linalg.inv([[4.0, 1.0], [1.0, 3.0]]), rtol=1e-12)


def test_woodbury_updates_track_the_exact_inverse():
    factors = _factors(0, 30, 5, 6).astype(np.float64)
    state = LogDetState(factors, lam=0.5)
    v = 0.5 * np.eye(6)
    for i in (3, 17, 4, 29, 0, 11):
        gain = state.add(i)
        before = np.linalg.slogdet(v)[1]
        v += factors[i].T @ factors[i]
        assert gain == pytest.approx(np.linalg.slogdet(v)[1] - before, rel=1e-9)
        np.testing.assert_allclose(state.v_inv, np.linalg.inv(v), rtol=1e-8, atol=1e-12)
    assert state.logdet == pytest.approx(np.linalg.slogdet(v)[1], rel=1e-9)


def test_compress_keeps_the_gram_matrix():
    rng = np.random.default_rng(1)
    tokens = rng.standard_normal((40, 8))
    factor = compress(tokens)
    assert factor.shape == (8, 8)
    np.testing.assert_allclose(factor.T @ factor, tokens.T @ tokens, rtol=1e-10, atol=1e-10)
    short = rng.standard_normal((3, 8))
    assert compress(short).shape == (3, 8)


def test_padding_rows_change_nothing():
    ragged = [np.ones((1, 3)), np.arange(6.0).reshape(2, 3), np.eye(3)]
    padded = pad_factors(ragged, 3, dtype=np.float64)
    assert padded.shape == (3, 3, 3)
    state = LogDetState(padded, lam=1.0)
    for i, f in enumerate(ragged):
        expected = np.linalg.slogdet(np.eye(3) + f.T @ f)[1]
        assert state.gains(np.array([i]))[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_greedy_matches_brute_force_on_small_pools(seed):
    """With a budget of 1 greedy is optimal; for 2..3 it is within the (1 - 1/e) guarantee and,
    on these pools, step by step the argmax found by enumerating every extension."""
    factors = _factors(seed, 9, 3, 4)
    lam = 0.7
    for budget in (1, 2, 3):
        result = naive_greedy(factors, budget, lam)
        best = max(logdet_of(factors, s, lam) for s in itertools.combinations(range(9), budget))
        floor = 4 * math.log(lam)  # f(∅)
        assert result.logdet - floor >= (1 - 1 / math.e) * (best - floor) - 1e-9
        if budget == 1:
            assert result.logdet == pytest.approx(best, rel=1e-9)
        # each pick is the enumerated best one-step extension of the prefix
        prefix: list[int] = []
        for pick in result.order:
            values = {i: logdet_of(factors, prefix + [i], lam) for i in range(9) if i not in prefix}
            assert values[int(pick)] == pytest.approx(max(values.values()), rel=1e-9)
            prefix.append(int(pick))
        assert result.logdet == pytest.approx(logdet_of(factors, result.order, lam), rel=1e-9)
        np.testing.assert_array_equal(lazy_greedy(factors, budget, lam).order, result.order)


def test_greedy_is_optimal_when_sentences_do_not_overlap():
    """Sentences on disjoint coordinates make f modular, so greedy must find the brute-force optimum."""
    rng = np.random.default_rng(7)
    d, n = 8, 8
    factors = np.zeros((n, 2, d))
    for i in range(n):
        factors[i, :, i] = rng.uniform(0.1, 3.0, size=2)  # sentence i lives on coordinate i
    for budget in range(1, 5):
        best_value, best_set = max((logdet_of(factors, s), s) for s in itertools.combinations(range(n), budget))
        for run in (naive_greedy, lazy_greedy):
            result = run(factors, budget)
            assert set(result.order.tolist()) == set(best_set)
            assert result.logdet == pytest.approx(best_value, rel=1e-12)


@pytest.mark.parametrize("seed,pooled", [(0, False), (1, False), (2, True), (3, True)])
def test_lazy_returns_exactly_the_naive_sequence(seed, pooled):
    factors = _factors(seed, 600, 1 if pooled else 6, 12)
    naive = naive_greedy(factors, 60, lam=1.0)
    for batch, heap_size in ((1, 4096), (8, 4096), (1, 3), (8, 5)):  # tiny heaps force the two-level queue
        lazy = lazy_greedy(factors, 60, lam=1.0, batch=batch, heap_size=heap_size)
        np.testing.assert_array_equal(lazy.order, naive.order)
        np.testing.assert_array_equal(lazy.gains, naive.gains)
        assert lazy.evaluations < naive.evaluations / 5
    assert np.all(np.diff(naive.gains) <= 1e-12)  # submodular: gains never grow


def test_ties_go_to_the_lower_index_in_both():
    base = _factors(4, 5, 2, 3)
    factors = np.concatenate([base, base])  # every sentence twice
    naive = naive_greedy(factors, 6, lam=1.0)
    for heap_size in (4096, 2):
        lazy = lazy_greedy(factors, 6, lam=1.0, heap_size=heap_size)
        np.testing.assert_array_equal(naive.order, lazy.order)
    assert naive.order[0] < 5


def test_exclude_and_budget_errors():
    factors = _factors(5, 10, 2, 3)
    result = lazy_greedy(factors, 3, exclude=np.array([0, 1, 2]))
    assert not set(result.order.tolist()) & {0, 1, 2}
    with pytest.raises(ValueError, match="exceeds"):
        naive_greedy(factors, 8, exclude=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="positive"):
        LogDetState(factors, lam=0.0)


def test_random_projection_is_seeded_and_scaled():
    a, b = random_projection(64, 16, seed=3), random_projection(64, 16, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, random_projection(64, 16, seed=4))
    assert np.mean(np.sum(a ** 2, axis=1)) == pytest.approx(1.0, abs=0.15)  # norms preserved on average
