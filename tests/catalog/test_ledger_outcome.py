"""The ledger counts successes on the outcome, keeps all-right and all-wrong streaks apart, and decays
its posterior as MoPPS does (hand-computed)."""

from __future__ import annotations

import pytest

from curate.catalog.ledger import Rollout, ledger_key, read_stats, record_rollouts, reward_spec
from curate.errors import BadUsage


def _group(step: int, rewards: list[float], success: list[bool] | None = None, pid: str = "p") -> list[Rollout]:
    flags = success or [None] * len(rewards)
    return [Rollout(pid, "m", "c", r, 3, run="t", step=step, sample_idx=j, success=s)
            for j, (r, s) in enumerate(zip(rewards, flags))]


def _stats(ws) -> dict:
    return read_stats(ws).row(0, named=True)


def test_success_flags_decide_the_counts_not_the_shaped_reward(ws):
    # shaped rewards all >= 0.5, but only one outcome passed
    record_rollouts(ws, _group(0, [1.5, 0.7, 0.6, 0.9], [True, False, False, False]))
    row = _stats(ws)
    assert row["successes"] == 1 and row["alpha"] == 2 and row["beta"] == 4
    assert row["zero_var_streak"] == 0 and row["last_group_mean"] == pytest.approx(0.25)


def test_all_right_and_all_wrong_streaks_are_kept_apart(ws):
    record_rollouts(ws, _group(0, [1, 1, 1], [True] * 3))
    record_rollouts(ws, _group(1, [1, 1, 1], [True] * 3))
    assert _stats(ws)["zero_var_streak"] == 2
    record_rollouts(ws, _group(2, [0, 0, 0], [False] * 3))  # a new kind: a streak of 1, not 3
    assert _stats(ws)["zero_var_streak"] == 1 and _stats(ws)["last_group_mean"] == 0
    record_rollouts(ws, _group(3, [0, 0, 0], [False] * 3))
    assert _stats(ws)["zero_var_streak"] == 2
    record_rollouts(ws, _group(4, [1, 0, 0], [True, False, False]))
    assert _stats(ws)["zero_var_streak"] == 0


def test_without_flags_equal_rewards_make_the_streak_and_the_threshold_its_kind(ws):
    record_rollouts(ws, _group(0, [0.8, 0.8]))
    record_rollouts(ws, _group(1, [0.2, 0.2]))  # flat but below 0.5: the other kind
    assert _stats(ws)["zero_var_streak"] == 1


def test_decay_follows_mopps(ws):
    # Beta(1, 1) prior, lambda = 0.9: alpha <- 0.9 alpha + 0.1 + s, beta <- 0.9 beta + 0.1 + (k - s)
    record_rollouts(ws, _group(0, [1, 1, 0, 0], [True, True, False, False]), decay=0.9)
    record_rollouts(ws, _group(1, [1, 1, 1, 0], [True, True, True, False]), decay=0.9)
    alpha = 0.9 * (0.9 * 1 + 0.1 + 2) + 0.1 + 3
    beta = 0.9 * (0.9 * 1 + 0.1 + 2) + 0.1 + 1
    row = _stats(ws)
    assert (row["alpha"], row["beta"]) == pytest.approx((alpha, beta))
    with pytest.raises(BadUsage, match="decay"):
        record_rollouts(ws, _group(2, [1, 1]), decay=1.5)


def test_the_outcome_reward_is_part_of_the_key_among_several_rewards():
    assert reward_spec([("math", 1), ("format", 0.5)], outcome="math") == "0.5*format+math;outcome=math"
    assert reward_spec([("math", 1)], outcome="math") == "math"  # one reward is its own outcome
    assert ledger_key("pol", [("math", 1), ("format", 0.5)], outcome="math") == "pol#0.5*format+math;outcome=math"
