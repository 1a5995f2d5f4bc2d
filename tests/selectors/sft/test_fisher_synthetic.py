"""FisherSFT's claim, qualitatively: on a planted multinomial logistic model, greedy log-det
selection predicts better than random selection at the same budget, once the budget passes a
few times the dimension (averaged over 5 seeds). The experiment lives in benchmarks/bench_fisher.py."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import REPO

pytest.importorskip("sklearn")

BENCH = REPO / "benchmarks" / "bench_fisher.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_fisher", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_greedy_logdet_beats_random_selection_past_a_few_times_the_dimension():
    bench = _bench()
    d = bench.logistic_world(0, n=10)[0].shape[2]
    for row in bench.compare(seeds=5, budgets=(4 * d, 8 * d), n=1000):
        assert row["greedy_mean_tv"] < row["random_mean_tv"], row
        assert row["greedy_max_tv"] < row["random_max_tv"], row
