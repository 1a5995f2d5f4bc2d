"""The fisher strategy on a real (tiny) model: features, greedy, projection, pooled mode, bad input."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from curate.errors import BadInput, BadUsage
from curate.lm.loading import load
from curate.lm.scoring import hidden_states
from curate.lm.templates import encode_pair
from curate.selectors.sft.fisher import FisherSelector
from curate.selectors.sft.logdet import lazy_greedy, logdet_of, naive_greedy, random_projection
from curate.selectors.pool import Pool
from tests.selectors.sft_helpers import word_problems


@pytest.fixture(scope="module")
def rows():
    problems = word_problems(40, seed=1)
    rows = [{"id": f"p{i}", "prompt": r["question"], "response": r["answer"]} for i, r in enumerate(problems)]
    rows[7]["response"] = None  # an RL prompt among SFT rows
    return rows


@pytest.fixture(scope="module")
def states(tiny_model_dir, rows):
    lm = load(str(tiny_model_dir), dtype="float32", device="cpu")
    items = [encode_pair(r["prompt"], r["response"], lm.tokenizer, add_eos=True) for r in rows if r["response"]]
    return list(hidden_states(lm, items, positions="response"))


def _pool(rows, model_dir, seed=0) -> Pool:
    return Pool.from_rows(pl.DataFrame(rows), model=str(model_dir), seed=seed)


def test_fisher_maximises_the_token_level_logdet(tiny_model_dir, rows, states):
    selector = FisherSelector(lam=0.5).fit(_pool(rows, tiny_model_dir))
    valid = [i for i, r in enumerate(rows) if r["response"]]
    assert selector.positions_.tolist() == valid
    # the factor of each example reproduces its Σ_j x_j x_jᵀ
    for row, x in enumerate(states):
        f = selector.factors_[row].astype(np.float64)
        np.testing.assert_allclose(f.T @ f, x.astype(np.float64).T @ x, rtol=2e-4, atol=2e-4)
    selection = selector.select(10)
    assert len(selection) == 10 and selection.drop_counts == {"below_budget": 29, "missing_response": 1}
    expected = lazy_greedy(selector.factors_, 10, lam=0.5)
    assert selection.ids.to_list() == [rows[valid[i]]["id"] for i in expected.order]
    np.testing.assert_allclose(selection.kept["score"].to_numpy(), expected.gains)
    # the objective of the picked set, computed directly from the token states
    d = states[0].shape[1]
    v = 0.5 * np.eye(d)
    for i in expected.order:
        v += states[i].astype(np.float64).T @ states[i]
    assert selection.stats["logdet"] == pytest.approx(np.linalg.slogdet(v)[1], rel=1e-5)
    assert selector.get_support().sum() == 10 and not selector.get_support()[7]
    naive = FisherSelector(lam=0.5, lazy=False).fit(_pool(rows, tiny_model_dir)).select(10)
    assert naive.ids.to_list() == selection.ids.to_list()


def test_singleton_gains_are_the_scores(tiny_model_dir, rows, states):
    selector = FisherSelector(lam=2.0).fit(_pool(rows, tiny_model_dir))
    valid = [i for i, r in enumerate(rows) if r["response"]]
    for row, x in zip(valid, states):
        expected = np.linalg.slogdet(np.eye(x.shape[1]) + x.astype(np.float64).T @ x / 2.0)[1]
        assert selector.scores_[row] == pytest.approx(expected, rel=1e-4)
    assert math.isnan(selector.scores_[7])


def test_projection_and_pooled_features(tiny_model_dir, rows, states):
    projected = FisherSelector(dim=8).fit(_pool(rows, tiny_model_dir, seed=5))
    assert projected.factors_.shape[2] == 8
    p = random_projection(states[0].shape[1], 8, seed=5)
    x = states[0].astype(np.float64) @ p
    f = projected.factors_[0].astype(np.float64)
    np.testing.assert_allclose(f.T @ f, x.T @ x, rtol=1e-3, atol=1e-3)
    pooled = FisherSelector(pooled=True).fit(_pool(rows, tiny_model_dir))
    assert pooled.factors_.shape[1] == 1
    first = states[0].astype(np.float64)
    np.testing.assert_allclose(pooled.factors_[0, 0], first.mean(axis=0) * math.sqrt(len(first)), rtol=1e-4, atol=1e-5)
    assert len(pooled.select(5)) == 5
    with pytest.raises(BadUsage, match="fisher.dim"):
        FisherSelector(dim=10_000).fit(_pool(rows, tiny_model_dir))


def test_unusable_features_are_dropped_as_nan(tiny_model_dir, rows):
    pool = _pool(rows[:6], tiny_model_dir)
    rng = np.random.default_rng(0)
    factors = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(6)]
    factors[2] = None  # NaN hidden states or an empty response
    selector = FisherSelector().fit_factors(factors, pool)
    selection = selector.select(4)
    assert "p2" not in selection.ids.to_list()
    assert selection.drop_counts == {"below_budget": 1, "nan_score": 1}
    with pytest.raises(BadUsage, match="at most 5 rows"):
        selector.select(6)
    assert selector._factor(np.full((3, 4), np.nan), None) is None


def test_fisher_needs_responses_and_a_budget(tiny_model_dir):
    prompts = pl.DataFrame({"id": ["a", "b"], "prompt": ["x", "y"], "response": [None, None]},
                           schema={"id": pl.String, "prompt": pl.String, "response": pl.String})
    with pytest.raises(BadInput, match="needs responses"):
        FisherSelector().fit(Pool.from_rows(prompts, model=str(tiny_model_dir)))
    rows = [{"id": "a", "prompt": "x", "response": "yes"}, {"id": "b", "prompt": "y", "response": "no"}]
    selector = FisherSelector().fit(Pool.from_rows(pl.DataFrame(rows), model=str(tiny_model_dir)))
    with pytest.raises(BadUsage, match="needs a budget"):
        selector.select(None)


def test_memory_guard_suggests_projection(tiny_model_dir, rows):
    with pytest.raises(BadUsage, match="fisher.dim") as info:
        FisherSelector(max_memory_gb=1e-6).fit(_pool(rows, tiny_model_dir))
    assert "pooled" in info.value.hint


def test_memory_guard_counts_the_padded_factor_array(tiny_model_dir, states):
    """One long response pads every example to its rank: a pool whose ragged factors fit the limit but whose
    [n, max rank, d] array does not is refused, naming both terms."""
    d = states[0].shape[1]
    rows = [{"id": "long", "prompt": "Tell a story.", "response": "a long story about many things. " * 8}]
    rows += [{"id": f"s{i}", "prompt": f"Say {i}.", "response": str(i)} for i in range(60)]
    pool = _pool(rows, tiny_model_dir)
    fitted = FisherSelector(max_memory_gb=1.0).fit(pool)
    rank = fitted.factors_.shape[1]
    assert rank == d and fitted.factors_.shape[0] == len(rows)  # the long response has more tokens than d
    lm = load(str(tiny_model_dir), dtype="float32", device="cpu")
    items = [encode_pair(r["prompt"], r["response"], lm.tokenizer, add_eos=True) for r in rows]
    ragged = sum(min(len(item.response_ids), d) * d * 4 for item in items)
    padded = len(rows) * rank * d * 4
    assert padded > 3 * ragged
    limit_gb = 2 * ragged / (1 << 30)  # the ragged factors alone fit twice over
    with pytest.raises(BadUsage, match="padded to 61 examples x max rank 32 x 32 dimensions") as info:
        FisherSelector(max_memory_gb=limit_gb).fit(pool)
    assert "fisher.max_memory_gb" in info.value.message and "fisher.dim" in info.value.hint
    factors = [fitted.factors_[i, : min(len(item.response_ids), d)] for i, item in enumerate(items)]
    with pytest.raises(BadUsage, match="padded to"):  # the same guard when the factors come precomputed
        FisherSelector(max_memory_gb=limit_gb).fit_factors(factors, pool)
    kept = FisherSelector(max_memory_gb=1.01 * (ragged + padded) / (1 << 30)).fit(pool)
    assert len(kept.select(5)) == 5


def test_naive_and_lazy_agree_on_brute_force_for_real_features(tiny_model_dir, rows):
    selector = FisherSelector(lam=1.0, dim=4).fit(_pool(rows[:8], tiny_model_dir))
    factors = selector.factors_
    for budget in (1, 2):
        naive = naive_greedy(factors, budget)
        assert lazy_greedy(factors, budget).order.tolist() == naive.order.tolist()
        if budget == 1:
            best = max(range(len(factors)), key=lambda i: logdet_of(factors, [i]))
            assert naive.order.tolist() == [best]
