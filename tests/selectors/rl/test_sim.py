"""The pass-rate simulator's mechanics (not its winners: those depend on its assumptions)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from curate.selectors.rl import sim
from curate.selectors.rl.sim import GAIN_RULES, STRATEGIES, SimConfig, run_simulation

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


def test_the_ledger_posterior_and_streaks_follow_the_real_ledger():
    ledger = sim._Ledger(2, decay=0.9)
    ledger.update(np.array([0, 1]), np.array([8, 3]), 8)
    ledger.update(np.array([0, 1]), np.array([0, 3]), 8)
    # alpha <- 0.9 alpha + 0.1 + wins (Beta(1, 1) prior), as curate.catalog.ledger does
    assert ledger.alpha[1] == pytest.approx(0.9 * (0.9 + 0.1 + 3) + 0.1 + 3)
    assert ledger.streak.tolist() == [1, 0]  # all right, then all wrong: a new streak of 1
    ledger.update(np.array([0]), np.array([0]), 8)
    assert ledger.streak[0] == 2 and ledger.last_mean[0] == 0


@pytest.mark.parametrize("gain", GAIN_RULES)
def test_gain_rules_peak_at_a_quarter_per_mixed_group(gain):
    world = sim._World(replace(SMALL, gain=gain, eta=1.0, batch=1, k=8))
    world.difficulty[:] = world.skill  # p = 0.5 for every prompt
    world.train(np.array([0]), np.array([4]))
    assert world.skill == pytest.approx(0.25)
    world.train(np.array([1]), np.array([8]))  # an all-right group teaches nothing
    assert world.skill == pytest.approx(0.25)


def test_round_picks_draw_once_per_round_and_step_picks_every_step():
    step_run = run_simulation("thompson", replace(SMALL, pick_every="step", max_steps=8, target_skill=99))
    round_run = run_simulation("thompson", replace(SMALL, pick_every="round", max_steps=8, target_skill=99))
    assert step_run.steps == round_run.steps == 8
    assert step_run.rollouts == round_run.rollouts == 8 * SMALL.batch * SMALL.k


def test_unknown_strategy_and_gain_are_rejected():
    with pytest.raises(ValueError, match="uniform"):
        run_simulation("nope", SMALL)
    with pytest.raises(ValueError, match="gain"):
        run_simulation("uniform", replace(SMALL, gain="linear"))
