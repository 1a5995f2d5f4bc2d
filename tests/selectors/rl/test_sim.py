"""The pass-rate simulator: deterministic, accounting is consistent, curricula beat uniform."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from curate.selectors.rl.sim import STRATEGIES, SimConfig, run_simulation

SMALL = SimConfig(prompts=300, target_skill=2.0, eta=0.1)


def test_same_seed_same_result():
    a = run_simulation("greso", SMALL)
    b = run_simulation("greso", SMALL)
    assert (a.rollouts, a.steps, a.final_skill) == (b.rollouts, b.steps, b.final_skill)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_rollout_accounting(strategy):
    result = run_simulation(strategy, SMALL)
    assert result.reached
    assert result.rollouts % SMALL.k == 0
    assert 0 <= result.zero_var_rollouts <= result.rollouts


def test_uniform_spends_batch_times_k_per_step():
    result = run_simulation("uniform", SMALL)
    assert result.rollouts == result.steps * SMALL.batch * SMALL.k


def test_every_curriculum_beats_uniform_and_greso_beats_dynamic_sampling():
    means = {}
    for strategy in STRATEGIES:
        means[strategy] = np.mean([run_simulation(strategy, replace(SimConfig(), seed=s)).rollouts for s in range(3)])
    for strategy in ("band", "thompson", "greso", "adarft"):
        assert means[strategy] < means["uniform"], (strategy, means)
    assert means["dynamic"] / means["greso"] >= 1.5, means


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError, match="uniform"):
        run_simulation("nope", SMALL)
