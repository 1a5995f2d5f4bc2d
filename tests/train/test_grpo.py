"""GRPO end to end on a tiny model: ledger writes, resume without duplicates, dynamic sampling, PODS,
truncation masking, the CHORD hybrid term, LoRA with a KL reference, and clear errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import polars as pl
import pytest
import torch

from curate.errors import BadUsage
from curate.train.grpo import DynamicSamplingWarning, GRPOConfig, sft_weight_at, train_grpo

ROWS = [{"id": f"p{i}", "prompt": f"Q{i}: {i} + 1 =", "answer": str(i + 1), "response": f"{i + 1}"}
        for i in range(8)]
BASE = dict(steps=2, prompts_per_step=2, num_generations=4, max_completion_length=6, lr=1e-2,
            mask_truncated_completions=False, save_every=0)


def varied(prompts, completions, **kwargs):
    """A reward with spread: how many distinct characters the completion has, mod 3."""
    return [float(len(set(c)) % 3) for c in completions]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_rollouts_go_to_the_ledger_and_metrics_are_trl_style(tiny_model_dir, tmp_path, ws):
    from curate.catalog.ledger import read_rollouts, read_stats
    from curate.lm.loading import load

    out = tmp_path / "run"
    stats = train_grpo(str(tiny_model_dir), ROWS, out, GRPOConfig(**BASE), reward=varied, ws=ws)
    rollouts = read_rollouts(ws, run=stats["run"])
    assert rollouts.height == 2 * 2 * 4
    assert sorted(set(rollouts["step"].to_list())) == [0, 1]
    ledger = read_stats(ws, stats["model_key"])
    assert ledger.height == 4 and int(ledger["attempts"].sum()) == 16
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2
    for key in ("reward", "reward_std", "frac_reward_zero_std", "entropy", "clip_ratio/region_mean",
                "completions/mean_length", "completions/clipped_ratio", "tokens_per_second", "loss", "grad_norm",
                "rewards/varied/mean", "rewards/varied/none"):
        assert key in metrics[0], key
    assert load(str(out), dtype="float32", device="cpu").model is not None
    assert stats["steps"] == 2 and stats["prompts"] == len(ROWS)


class Stop(Exception):
    pass


def test_resume_is_exact_and_never_duplicates_rollouts(tiny_model_dir, tmp_path, ws):
    from curate.catalog.ledger import read_rollouts

    config = GRPOConfig(**{**BASE, "steps": 4, "save_every": 2})
    straight = train_grpo(str(tiny_model_dir), ROWS, tmp_path / "a", config, reward=varied)

    def crash(step, metrics):
        if step == 3:
            raise Stop

    with pytest.raises(Stop):
        train_grpo(str(tiny_model_dir), ROWS, tmp_path / "b", config, reward=varied, ws=ws, progress=crash)
    first = read_rollouts(ws)
    assert first.height == 3 * 2 * 4  # step 3 was sampled and recorded before the crash
    resumed = train_grpo(str(tiny_model_dir), ROWS, tmp_path / "b", config, reward=varied, ws=ws, resume=True)
    assert resumed["resumed_from"] == 2
    again = read_rollouts(ws)
    assert again.height == 4 * 2 * 4 and again["rollout_id"].n_unique() == again.height
    assert set(again["run"].to_list()) == {resumed["run"]}
    for name, tensor in _weights(tmp_path / "a").items():
        torch.testing.assert_close(tensor, _weights(tmp_path / "b")[name], rtol=0, atol=0)
    assert straight["reward_last"] == resumed["reward_last"]


def test_dynamic_sampling_refills_and_warns_at_the_cap(tiny_model_dir, tmp_path):
    seen = []

    def only_some(prompts, completions, **kwargs):  # prompts Q0..Q3 always score 1: zero variance
        return [1.0 if int(p[1]) < 4 else float(len(set(c)) % 3) for p, c in zip(prompts, completions)]

    def recording_filter(rewards):
        seen.append(rewards.shape)
        return np.ptp(rewards, axis=1) > 0

    config = GRPOConfig(**{**BASE, "steps": 2, "dynamic_sampling": True, "max_refills": 3})
    history = []
    train_grpo(str(tiny_model_dir), ROWS, tmp_path / "ds", config, reward=only_some, group_filter=recording_filter,
               progress=lambda s, m: history.append(m))
    assert all(shape[1] == 4 for shape in seen)
    assert all(m["groups/trained"] == 2 for m in history)
    assert sum(m["dynamic_sampling/rounds"] for m in history) > 2  # at least one refill happened

    constant = GRPOConfig(**{**BASE, "steps": 1, "dynamic_sampling": True, "max_refills": 2})
    with pytest.warns(DynamicSamplingWarning, match="kept 0 of 2 groups after 3 rounds"):
        stats = train_grpo(str(tiny_model_dir), ROWS, tmp_path / "cap", constant,
                           reward=lambda prompts, completions, **kw: [1.0] * len(completions),
                           progress=lambda s, m: history.append(m))
    assert history[-1]["dynamic_sampling/capped"] == 1 and history[-1]["groups/trained"] == 0
    assert stats["steps"] == 1
    for name, tensor in _weights(tmp_path / "cap").items():  # nothing to learn from: weights unchanged
        torch.testing.assert_close(tensor, _weights(tiny_model_dir)[name])


def test_pods_down_samples_n_to_m(tiny_model_dir, tmp_path):
    calls = []

    def down(rewards, m):
        calls.append((rewards.shape, m))
        from curate.train.group_filters import max_variance_down_sample

        return max_variance_down_sample(rewards, m)

    config = GRPOConfig(**{**BASE, "steps": 1, "num_generations": 6, "pods_m": 2})
    history = []
    train_grpo(str(tiny_model_dir), ROWS, tmp_path / "pods", config, reward=varied, down_sampler=down,
               progress=lambda s, m: history.append(m))
    assert calls == [((2, 6), 2)]
    assert history[0]["completions/trained"] == 4  # 2 groups x m=2
    with pytest.raises(BadUsage, match="pods_m"):
        train_grpo(str(tiny_model_dir), ROWS, tmp_path / "pods2", GRPOConfig(**BASE), reward=varied,
                   down_sampler=down)


def test_truncated_completions_are_masked(tiny_model_dir, tmp_path):
    # a random tiny model almost never says EOS within 3 tokens: every completion is truncated
    config = GRPOConfig(**{**BASE, "steps": 1, "max_completion_length": 3, "mask_truncated_completions": True})
    history = []
    train_grpo(str(tiny_model_dir), ROWS, tmp_path / "masked", config, reward=varied,
               progress=lambda s, m: history.append(m))
    assert history[0]["completions/clipped_ratio"] == 1.0 and history[0]["chunks/trained"] == 0
    for name, tensor in _weights(tmp_path / "masked").items():
        torch.testing.assert_close(tensor, _weights(tiny_model_dir)[name])
    unmasked = GRPOConfig(**{**BASE, "steps": 1, "max_completion_length": 3})
    train_grpo(str(tiny_model_dir), ROWS, tmp_path / "unmasked", unmasked, reward=varied)
    moved = _weights(tmp_path / "unmasked")
    assert any(not torch.equal(moved[n], t) for n, t in _weights(tiny_model_dir).items())


def test_chord_hybrid_sft_term_and_schedule(tiny_model_dir, tmp_path):
    config = GRPOConfig(**{**BASE, "steps": 3, "sft_weight": 0.5, "sft_weight_end": 0.1, "sft_schedule": "linear"})
    assert [round(sft_weight_at(s, config), 3) for s in range(3)] == [0.5, 0.3, 0.1]
    cosine = GRPOConfig(**{**BASE, "steps": 3, "sft_weight": 0.5, "sft_weight_end": 0.1, "sft_schedule": "cosine"})
    assert [round(sft_weight_at(s, cosine), 3) for s in range(3)] == [0.5, 0.3, 0.1]
    history = []
    train_grpo(str(tiny_model_dir), ROWS, tmp_path / "chord", config, reward=varied,
               progress=lambda s, m: history.append(m))
    assert [round(m["sft_weight"], 3) for m in history] == [0.5, 0.3, 0.1]
    assert all(m["sft_loss"] > 0 for m in history)
    no_responses = [{k: v for k, v in r.items() if k != "response"} for r in ROWS]
    with pytest.raises(BadUsage, match="expert responses"):
        train_grpo(str(tiny_model_dir), no_responses, tmp_path / "x", config, reward=varied)


def test_lora_with_kl_reference_and_mu_iterations(tiny_model_dir, tmp_path):
    pytest.importorskip("peft")
    config = GRPOConfig(**{**BASE, "steps": 1, "lora": True, "lora_r": 4, "beta": 0.1, "num_iterations": 2,
                           "epsilon_high": 0.28, "loss_type": "dr_grpo", "scale_rewards": "none"})
    history = []
    train_grpo(str(tiny_model_dir), ROWS, tmp_path / "lora", config, reward=["format", varied],
               progress=lambda s, m: history.append(m))
    assert "kl" in history[0] and history[0]["kl"] >= 0
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").exists()


def test_none_rewards_are_counted_and_excluded(tiny_model_dir, tmp_path):
    def half_none(prompts, completions, **kwargs):
        return [None if i % 2 else float(len(c)) for i, c in enumerate(completions)]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = train_grpo(str(tiny_model_dir), ROWS, tmp_path / "none", GRPOConfig(**{**BASE, "steps": 1}),
                           reward=half_none)
    assert stats["reward_nones"] == 4


@pytest.mark.parametrize("overrides,reward,message", [
    ({"num_generations": 1}, "math", "num_generations must be >= 2"),
    ({"pods_m": 4}, "math", "pods_m must be in 2..3"),
    ({"loss_type": "ppo"}, "math", "unknown loss_type"),
    ({"scale_rewards": "std"}, "math", "unknown scale_rewards"),
    ({}, "nonsense", "unknown reward"),
    ({"reward_weights": (1.0, 2.0)}, "math", "2 reward weights for 1 rewards"),
    ({"max_completion_length": 5000}, "math", "fills the model's whole context"),
])
def test_bad_settings_are_clear_errors(tiny_model_dir, tmp_path, overrides, reward, message):
    with pytest.raises(BadUsage, match=message):
        train_grpo(str(tiny_model_dir), ROWS, tmp_path / "bad", GRPOConfig(**{**BASE, **overrides}), reward=reward)


def test_grpo_climbs_a_learnable_reward(tiny_model_dir, tmp_path):
    """The policy gradient points the right way: a reward for late-alphabet characters goes up."""
    def late_letters(prompts, completions, **kwargs):
        return [sum(ch >= "n" for ch in c if ch.isalpha()) / max(1, sum(ch.isalpha() for ch in c)) for c in completions]

    history = []
    config = GRPOConfig(**{**BASE, "steps": 12, "prompts_per_step": 4, "num_generations": 8,
                           "max_completion_length": 8, "lr": 3e-2})
    train_grpo(str(tiny_model_dir), ROWS, tmp_path / "climb", config, reward=late_letters,
               progress=lambda s, m: history.append(m["reward"]))
    assert np.mean(history[-3:]) > np.mean(history[:3]) + 0.1, history


def test_a_restart_before_the_first_checkpoint_does_not_double_count(tiny_model_dir, tmp_path, ws):
    import shutil

    from curate.catalog.ledger import read_rollouts, read_stats

    config = GRPOConfig(**{**BASE, "steps": 1})
    first = train_grpo(str(tiny_model_dir), ROWS, tmp_path / "run", config, reward=varied, ws=ws)
    shutil.rmtree(tmp_path / "run")  # as if it had died before writing any checkpoint
    again = train_grpo(str(tiny_model_dir), ROWS, tmp_path / "run", config, reward=varied, ws=ws)
    assert again["run"] == first["run"]
    assert read_rollouts(ws).height == 8 and int(read_stats(ws)["attempts"].sum()) == 8
    other = train_grpo(str(tiny_model_dir), ROWS, tmp_path / "run2", config, reward=varied, ws=ws)
    assert other["run"] != first["run"] and read_rollouts(ws).height == 16


def test_math_plus_format_and_math_alone_keep_separate_ledger_statistics(tiny_model_dir, tmp_path, ws):
    """Issue 16 item 4: a run with math + 0.2 format fed the same statistics as pure math."""
    from curate.catalog.ledger import read_stats

    one = dict(BASE, steps=1)
    alone = train_grpo(str(tiny_model_dir), ROWS, tmp_path / "a", GRPOConfig(**one), reward="math", ws=ws)
    mixed = train_grpo(str(tiny_model_dir), ROWS, tmp_path / "b", GRPOConfig(**one, reward_weights=(1.0, 0.2)),
                       reward=["math", "format"], ws=ws)
    policy = alone["model_key"].split("#")[0]
    assert alone["model_key"] == f"{policy}#math"
    assert mixed["model_key"] == f"{policy}#0.2*format+math;outcome=math"  # math decides success (issue 11)
    stats = read_stats(ws)
    totals = dict(stats.group_by("model_key").agg(pl.col("attempts").sum()).iter_rows())
    assert totals == {alone["model_key"]: 8, mixed["model_key"]: 8}
    user = train_grpo(str(tiny_model_dir), ROWS, tmp_path / "c", GRPOConfig(**one), reward=varied, ws=ws)
    assert user["model_key"] == f"{policy}#tests.train.test_grpo:varied"
