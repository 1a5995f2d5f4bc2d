"""Dynamic sampling and the ledger judge the outcome reward, not the shaped sum (`--filter-on`)."""

from __future__ import annotations

import warnings

import polars as pl
import torch

from curate.catalog.ledger import read_stats
from curate.train.grpo import GRPOConfig, train_grpo

ROWS = [{"id": f"o{i}", "prompt": f"O{i}: {i} + 3 =", "answer": str(i + 3)} for i in range(6)]
BASE = dict(steps=1, prompts_per_step=3, num_generations=4, max_completion_length=6, lr=1e-2,
            mask_truncated_completions=False, save_every=0, dynamic_sampling=True, max_refills=0)
OUTCOME = "tests.train.test_outcome_filter:never"


def never(prompts, completions, **kwargs):
    """The outcome: no completion is right."""
    return [0.0 for _ in completions]


def shaped(prompts, completions, **kwargs):
    """A shaping term with spread: 1 for completions of even length."""
    return [float(len(c) % 2 == 0) for c in completions]


def _run(model, tmp_path, ws, filter_on: str) -> dict:
    torch.manual_seed(0)
    history = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_grpo(str(model), ROWS, tmp_path / filter_on,
                   GRPOConfig(**BASE, filter_on=filter_on, outcome_reward=OUTCOME),
                   reward=[OUTCOME, "tests.train.test_outcome_filter:shaped"], ws=ws,
                   progress=lambda s, m: history.append(m))
    return history[-1]


def test_filter_on_outcome_drops_groups_whose_outcome_is_all_wrong(tiny_model_dir, tmp_path, ws):
    on_outcome = _run(tiny_model_dir, tmp_path, ws, "outcome")
    assert on_outcome["groups/sampled"] == 3 and on_outcome["groups/trained"] == 0  # every outcome is 0
    on_reward = _run(tiny_model_dir, tmp_path, ws, "reward")
    assert on_reward["groups/trained"] > 0  # the shaped sum varies, so its groups pass
    stats = read_stats(ws)
    assert stats["model_key"].str.ends_with(";outcome=" + OUTCOME).all()
    assert stats.select(pl.col("successes").sum()).item() == 0  # shaped sums of 1 are not successes
    assert (stats["zero_var_streak"] >= 1).all()  # on the outcome every group was all wrong
