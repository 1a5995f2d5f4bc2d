"""CHORD (Zhang et al. 2025): the warm-up-then-decay schedule (hand-computed) and an expert dataset
for the SFT term (`--sft-data`), which applies even when dynamic sampling leaves no group."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from curate.errors import BadUsage
from curate.train.grpo import GRPOConfig, sft_weight_at, train_grpo

PROMPTS = [{"id": f"q{i}", "prompt": f"Q{i}: {i} + 2 =", "answer": str(i + 2)} for i in range(6)]  # no responses
EXPERTS = [{"id": f"e{i}", "prompt": f"E{i}: {i} + 1 =", "response": f"{i + 1}"} for i in range(5)]
BASE = dict(steps=2, prompts_per_step=2, num_generations=4, max_completion_length=6, lr=1e-2,
            mask_truncated_completions=False, save_every=0)


def constant(prompts, completions, **kwargs):
    return [1.0 for _ in completions]


def test_chord_schedule_warms_up_then_decays_by_a_half_cosine():
    config = GRPOConfig(steps=10, sft_weight=0.9, sft_weight_end=0.1, sft_schedule="chord", sft_warmup=2)
    # warm-up 0 -> 0.9 over 2 steps; then cosine from 0.9 to 0.1 over the 8 steps left
    expected = [0.0, 0.45] + [0.1 + 0.8 * 0.5 * (1 + math.cos(math.pi * (s - 2) / 8)) for s in range(2, 10)]
    assert [sft_weight_at(s, config) for s in range(10)] == pytest.approx(expected)
    assert sft_weight_at(6, config) == pytest.approx(0.5)
    short = GRPOConfig(steps=10, sft_weight=0.9, sft_weight_end=0.1, sft_schedule="chord", sft_decay_steps=4)
    assert [sft_weight_at(s, short) for s in (0, 2, 4, 9)] == pytest.approx([0.9, 0.5, 0.1, 0.1])


def test_expert_data_feeds_the_sft_term_even_when_every_group_is_filtered(tiny_model_dir, tmp_path):
    torch.manual_seed(0)
    config = GRPOConfig(**{**BASE, "sft_weight": 0.5, "dynamic_sampling": True, "max_refills": 0})
    history = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_grpo(str(tiny_model_dir), PROMPTS, tmp_path / "experts", config, reward=constant,
                   expert_data=EXPERTS, progress=lambda s, m: history.append(m))
    assert all(m["groups/trained"] == 0 for m in history)  # a constant reward: every group filtered out
    assert all(m["sft_loss"] > 0 and m["sft_weight"] == 0.5 for m in history)  # the expert term still trains
    with pytest.raises(BadUsage, match="no row has a response"):
        train_grpo(str(tiny_model_dir), PROMPTS, tmp_path / "none", config, reward=constant, expert_data=PROMPTS)
