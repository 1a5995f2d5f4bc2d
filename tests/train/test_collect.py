"""`curate rollouts` as a function: skip what is sampled, refresh, resume without double counting."""

from __future__ import annotations

import json

import pytest

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.ledger import read_rollouts, read_stats
from curate.errors import BadUsage
from curate.train.collect import CollectConfig, collect_rollouts
from curate.train.rewards import get_reward
from tests.conftest import write_jsonl
from tests.rl_helpers import prompt_set

SMALL = dict(num_generations=3, max_completion_length=6, prompts_per_batch=4, dtype="float32", device="cpu")


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
        collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:coin", CollectConfig(**SMALL))
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


def test_two_reward_specifications_keep_two_independent_ledger_entries(ws, tmp_path, tiny_model_dir):
    """Issue 16 item 4: `--reward format` after `--reward math` skipped every prompt."""
    version = prompt_set(ws, tmp_path, n=4)
    coin = collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:coin", CollectConfig(**SMALL))
    parity = collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:length_parity_or_none",
                              CollectConfig(**SMALL))
    assert parity["skipped_already_sampled"] == 0 and parity["prompts_sampled"] == 4
    assert coin["model_key"] != parity["model_key"]
    policy = coin["model_key"].split("#")[0]
    assert coin["model_key"] == f"{policy}#tests.rl_rewards:coin"
    assert parity["model_key"] == f"{policy}#tests.rl_rewards:length_parity_or_none"
    stats = read_stats(ws)
    assert sorted(stats["model_key"].unique().to_list()) == sorted([coin["model_key"], parity["model_key"]])
    assert stats.filter(stats["model_key"] == coin["model_key"])["attempts"].to_list() == [3] * 4
    rollouts = read_rollouts(ws)
    assert rollouts.filter(rollouts["model_key"] == coin["model_key"]).height == 12
    assert rollouts.filter(rollouts["model_key"] == parity["model_key"]).height == 12
    again = collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:coin", CollectConfig(**SMALL))
    assert again["skipped_already_sampled"] == 4 and again["rollouts_written"] == 0


def test_a_given_model_key_is_the_policy_part_of_the_ledger_key(ws, tmp_path, tiny_model_dir):
    version = prompt_set(ws, tmp_path, n=2)
    report = collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:coin",
                              CollectConfig(**SMALL, model_key="sft-v1"))
    assert report["model_key"] == "sft-v1#tests.rl_rewards:coin"
    same = collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:coin",
                            CollectConfig(**SMALL, model_key="sft-v1#tests.rl_rewards:coin"))
    assert same["skipped_already_sampled"] == 2
    with pytest.raises(BadUsage, match="names the reward specification"):
        collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:coin",
                         CollectConfig(**SMALL, model_key="sft-v1#math"))


def _long_and_short(ws, tmp_path):
    rows = [{"question": f"What is {i} plus {i}?" + (" Think about it slowly." * 12 if i < 3 else ""),
             "answer": str(2 * i)} for i in range(5)]
    return ingest(ws, str(write_jsonl(tmp_path / "mixed.jsonl", rows)), IngestOptions(name="mixed")).version


def test_prompts_left_out_as_too_long_are_counted_with_the_limit(ws, tmp_path, tiny_model_dir):
    version = _long_and_short(ws, tmp_path)
    report = collect_rollouts(ws, version, str(tiny_model_dir), "tests.rl_rewards:coin",
                              CollectConfig(**SMALL, max_prompt_length=100))
    assert (report["prompts_in_dataset"], report["prompts_too_long"], report["prompts"]) == (5, 3, 2)
    assert report["max_prompt_length"] == 100 and report["prompt_limit_set_by"] == "max_prompt_length"
    with pytest.raises(BadUsage, match="max-prompt-length"):
        collect_rollouts(ws, version, str(tiny_model_dir), "x:y", CollectConfig(**SMALL, max_prompt_length=0))


def test_rollouts_command_says_how_many_prompts_were_too_long(ws, tmp_path, tiny_model_dir, capsys):
    """Issue 16 item 7: the count was computed but not printed."""
    from curate.cli.app import main

    version = _long_and_short(ws, tmp_path)
    args = ["rollouts", version.ref, "--model", str(tiny_model_dir), "-G", "2", "--max-completion-length", "4",
            "--reward", "tests.rl_rewards:coin", "--max-prompt-length", "100", "--workspace", str(ws.root)]
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    assert exited.value.code == 0, out + err
    assert "3 of 5 prompts are longer than 100 tokens and were left out" in " ".join(err.split())
    assert "--max-prompt-length" in err
    with pytest.raises(SystemExit) as exited:
        main([*args, "--json", "--refresh"])
    out, err = capsys.readouterr()
    payload = json.loads(out)
    assert payload["prompts_too_long"] == 3 and payload["max_prompt_length"] == 100
    assert payload["model_key"].endswith("#tests.rl_rewards:coin")
