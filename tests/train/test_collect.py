"""`curate rollouts` as a function: skip what is sampled, refresh, resume without double counting."""

from __future__ import annotations

import pytest

from curate.catalog.ledger import read_rollouts, read_stats
from curate.train.collect import CollectConfig, collect_rollouts
from curate.train.rewards import get_reward
from tests.rl_helpers import prompt_set

SMALL = dict(k=3, max_completion_length=6, prompts_per_batch=4, dtype="float32", device="cpu")


def _consistent(ws) -> tuple[int, int]:
    rollouts, stats = read_rollouts(ws), read_stats(ws)
    scored = rollouts.filter(rollouts["reward"].is_not_null()).height
    assert rollouts["rollout_id"].n_unique() == rollouts.height
    assert int(stats["attempts"].sum()) == scored
    return rollouts.height, scored


def test_collect_fills_the_ledger_then_skips_sampled_prompts(ws, tmp_path, tiny_model_dir):
    version = prompt_set(ws, tmp_path, n=10)
    first = collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:coin", CollectConfig(**SMALL))
    assert first["prompts_sampled"] == 10 and first["rollouts_written"] == 30 and first["round"] == 0
    assert first["mixed_groups"] + first["zero_variance_groups"] == 10
    assert _consistent(ws) == (30, 30)
    stats = read_stats(ws)
    assert set(stats["attempts"].to_list()) == {3}
    assert stats["model_key"].n_unique() == 1

    again = collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:coin", CollectConfig(**SMALL))
    assert again["skipped_already_sampled"] == 10 and again["rollouts_written"] == 0
    assert _consistent(ws) == (30, 30)


def test_refresh_is_a_new_round_that_adds_to_the_statistics(ws, tmp_path, tiny_model_dir):
    version = prompt_set(ws, tmp_path, n=4)
    collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:coin", CollectConfig(**SMALL))
    refreshed = collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:coin",
                                 CollectConfig(**SMALL, refresh=True))
    assert refreshed["round"] == 1 and refreshed["rollouts_written"] == 12
    assert set(read_stats(ws)["attempts"].to_list()) == {6}
    assert _consistent(ws) == (24, 24)


def test_an_interrupted_run_resumes_without_paying_or_counting_twice(ws, tmp_path, tiny_model_dir, monkeypatch):
    version = prompt_set(ws, tmp_path, n=10)
    calls = {"n": 0}
    real = get_reward("tests.rl_rewards:coin")

    def failing_after_two_batches(prompts, completions, **columns):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed mid-run")
        return real(prompts, completions, **columns)

    monkeypatch.setattr("curate.train.collect.get_reward", lambda spec: failing_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        collect_rollouts(ws, version, str(tiny_model_dir), "x:y", CollectConfig(**SMALL))
    assert _consistent(ws) == (24, 24)  # two batches of 4 prompts x 3 rollouts were recorded
    monkeypatch.undo()
    resumed = collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:coin", CollectConfig(**SMALL))
    assert resumed["skipped_already_sampled"] == 8 and resumed["rollouts_written"] == 6
    assert _consistent(ws) == (30, 30)


def test_none_rewards_are_stored_but_not_counted(ws, tmp_path, tiny_model_dir):
    version = prompt_set(ws, tmp_path, n=4)
    report = collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:length_parity_or_none",
                              CollectConfig(**SMALL))
    total, scored = _consistent(ws)
    assert total == 12 and scored == 12 - report["reward_nones"]
