"""`curate.train.evaluate`: accuracy and mean reward semantics, and the response loss against a brute-force forward."""

from __future__ import annotations

import math

import pytest
import torch

from curate.train.evaluate import evaluate

ROWS = [{"id": "a", "prompt": "What is 1 + 1?", "response": "2", "answer": "2"},
        {"id": "b", "prompt": "What is 2 + 2?", "response": "4", "answer": "4"},
        {"id": "c", "prompt": "Say hi.", "response": "hi", "answer": None},
        {"id": "d", "prompt": "What is 3 + 3?", "response": None, "answer": "6"}]


def fixed_reward(prompts, completions, id, **_):
    """Full credit for a, half for b, no score for c, nothing for d: independent of the completion."""
    return [{"a": 1.0, "b": 0.5, "c": None, "d": 0.0}[i] for i in id]


def second_reward(prompts, completions, id, **_):
    return [{"a": 0.0, "b": 1.0, "c": None, "d": 1.0}[i] for i in id]


def test_accuracy_counts_full_credit_and_reward_averages_scored_rows(tiny_model_dir):
    result = evaluate(tiny_model_dir, ROWS, metrics=["accuracy"], reward="tests.train.test_evaluate:fixed_reward",
                      max_new_tokens=2, device="cpu")
    # scored rows a, b, d (c has no value): full credit only for a -> 1/3; mean reward (1 + 0.5 + 0) / 3
    assert (result.rows, result.scored, result.unscored) == (4, 3, 1)
    assert result.metrics["accuracy"] == pytest.approx(1 / 3)
    assert result.metrics["reward"] == pytest.approx(0.5)
    assert "loss" not in result.metrics

    both = evaluate(tiny_model_dir, ROWS, metrics=["reward"], max_new_tokens=2, device="cpu",
                    reward=["tests.train.test_evaluate:fixed_reward", "tests.train.test_evaluate:second_reward"])
    # per row: a (1 + 0) / 2, b (0.5 + 1) / 2, d (0 + 1) / 2; full credit from every reward: none
    assert both.metrics["reward"] == pytest.approx((0.5 + 0.75 + 0.5) / 3)
    assert both.metrics["accuracy"] == 0.0


def test_math_reward_on_greedy_answers_is_deterministic(tiny_model_dir):
    first = evaluate(tiny_model_dir, ROWS, metrics=["accuracy"], reward="math", max_new_tokens=3, device="cpu")
    again = evaluate(tiny_model_dir, ROWS, metrics=["accuracy"], reward="math", max_new_tokens=3, device="cpu")
    assert first.metrics == again.metrics and first.scored == 3  # c has no answer: math cannot score it


def test_loss_is_the_mean_nll_of_response_tokens(tiny_model_dir):
    from curate.lm.loading import load
    from curate.lm.templates import encode_pair

    result = evaluate(tiny_model_dir, ROWS, metrics=["loss"], device="cpu")
    lm = load(str(tiny_model_dir), dtype="float32", device="cpu")
    total, tokens = 0.0, 0
    for row in ROWS[:3]:  # d has no response
        item = encode_pair(row["prompt"], row["response"], lm.tokenizer, "auto", add_eos=True)
        ids = torch.tensor([item.prompt_ids + item.response_ids])
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(input_ids=ids).logits[0].float(), dim=-1)
        for j, token in enumerate(item.response_ids):  # the token at position p is predicted at p - 1
            total -= float(logp[len(item.prompt_ids) + j - 1, token])
            tokens += 1
    assert result.loss_tokens == tokens and result.metrics["loss"] == pytest.approx(total / tokens, rel=1e-4)
    assert math.isnan(evaluate(tiny_model_dir, [ROWS[3]], metrics=["loss"], device="cpu").metrics["loss"])


def test_unknown_metric_is_refused(tiny_model_dir):
    from curate.errors import BadUsage

    with pytest.raises(BadUsage, match="unknown metric 'f1'"):
        evaluate(tiny_model_dir, ROWS, metrics=["f1"])
