"""The GRPO and SFT objectives against values computed by hand (ragged masks, every loss type and advantage mode)."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from curate.train.losses import (Totals, aggregate, clip_stats, combine_rewards, group_advantages, nanstd,
                                 per_token_loss, sft_token_loss)

EPS = 1e-4  # TRL's std epsilon


def test_group_advantages_by_hand():
    nan = float("nan")
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 0.0, nan, 1.0, 1.0])
    adv, group_std = group_advantages(rewards, 4, "group")
    s1 = statistics.stdev([1, 0, 0, 1])
    s3 = statistics.stdev([0, 1, 1])
    expected = [0.5 / (s1 + EPS), -0.5 / (s1 + EPS), -0.5 / (s1 + EPS), 0.5 / (s1 + EPS), 0, 0, 0, 0,
                (0 - 2 / 3) / (s3 + EPS), 0.0, (1 / 3) / (s3 + EPS), (1 / 3) / (s3 + EPS)]
    assert adv.tolist() == pytest.approx(expected, abs=1e-6)
    assert group_std.tolist()[::4] == pytest.approx([s1, 0.0, s3], abs=1e-6)

    scored = [1, 0, 0, 1, 2, 2, 2, 2, 0, 1, 1]
    batch_std = statistics.stdev(scored)
    adv_b, _ = group_advantages(rewards, 4, "batch")  # group mean, batch std (TRL / PPO-Lite)
    assert adv_b[0].item() == pytest.approx(0.5 / (batch_std + EPS), abs=1e-6)
    assert adv_b[8].item() == pytest.approx((0 - 2 / 3) / (batch_std + EPS), abs=1e-6)
    assert adv_b[9].item() == 0.0
    adv_n, _ = group_advantages(rewards, 4, "none")  # Dr. GRPO: no std scaling
    assert adv_n.tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0, -2 / 3, 0, 1 / 3, 1 / 3], abs=1e-6)


def test_nanstd_and_combine_rewards():
    assert nanstd(torch.tensor([1.0, 3.0])).item() == pytest.approx(math.sqrt(2))
    assert math.isnan(nanstd(torch.tensor([1.0, float("nan")])).item())  # one value: undefined
    nan = float("nan")
    table = torch.tensor([[1.0, 0.5], [nan, 2.0], [nan, nan]])
    combined = combine_rewards(table, torch.tensor([2.0, 1.0]))
    assert combined[:2].tolist() == [2.5, 2.0] and math.isnan(combined[2])


def _batch():
    """Two sequences, ragged: the second has 2 real tokens. Ratios chosen to hit both clip sides."""
    old = torch.zeros(2, 3)
    logps = torch.log(torch.tensor([[1.5, 1.0, 1.1], [0.5, 1.3, 1.0]]))
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages = torch.tensor([2.0, -1.0])
    return logps, old, mask, advantages


def test_clipped_surrogate_by_hand():
    logps, old, mask, advantages = _batch()
    token = per_token_loss(logps, advantages, old, epsilon_low=0.2, epsilon_high=0.2)
    # A=+2: -min(r A, clip(r) A) = -min(3, 2.4), -2, -min(2.2, 2.4); A=-1: -min(-.5, -.8), -min(-1.3, -1.2)
    expected = torch.tensor([[-2.4, -2.0, -2.2], [0.8, 1.3, 0.0]])
    torch.testing.assert_close(token.loss * mask, expected, atol=1e-6, rtol=0)
    high = per_token_loss(logps, advantages, old, epsilon_low=0.2, epsilon_high=0.28)  # DAPO clip-higher
    assert high.loss[0, 0].item() == pytest.approx(-2.56, abs=1e-6)
    stats = clip_stats(token.ratio, advantages, mask, 0.2, 0.2)
    assert stats == {"clip_low": 1.0, "clip_high": 1.0, "clip_region": 2.0}


@pytest.mark.parametrize("loss_type,expected", [
    ("grpo", ((-2.4 - 2.0 - 2.2) / 3 + (0.8 + 1.3) / 2) / 2),
    ("bnpo", (-6.6 + 2.1) / 5),
    ("dr_grpo", (-6.6 + 2.1) / (2 * 4)),
    ("dapo", (-6.6 + 2.1) / 5),
])
def test_aggregation_by_hand(loss_type, expected):
    logps, old, mask, advantages = _batch()
    token = per_token_loss(logps, advantages, old)
    totals = Totals(sequences=2, tokens=5, micro_batches=1, max_completion_length=4)
    assert aggregate(token.loss, mask, loss_type, totals).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_micro_batch_shares_sum_to_the_batch_loss(loss_type):
    torch.manual_seed(0)
    logps, mask = torch.randn(6, 5), (torch.rand(6, 5) > 0.3).float()
    advantages, old = torch.randn(6), torch.randn(6, 5) * 0.1
    loss = per_token_loss(logps, advantages, logps.detach() + old).loss
    whole = aggregate(loss, mask, loss_type, Totals(6, int(mask.sum()), 1, 5))
    split = Totals(6, int(mask.sum()), 3, 5)
    parts = sum(aggregate(loss[i:i + 2], mask[i:i + 2], loss_type, split) for i in (0, 2, 4))
    assert parts.item() == pytest.approx(whole.item(), abs=1e-6)


def test_bnpo_is_the_mean_of_local_token_means():
    logps, old, mask, advantages = _batch()
    loss = per_token_loss(logps, advantages, old).loss
    totals = Totals(2, 5, 2, 4)
    parts = aggregate(loss[:1], mask[:1], "bnpo", totals) + aggregate(loss[1:], mask[1:], "bnpo", totals)
    assert parts.item() == pytest.approx(((-6.6 / 3) + (2.1 / 2)) / 2, abs=1e-6)


def test_k3_kl_by_hand_with_and_without_bias_correction():
    logps = torch.log(torch.tensor([[0.5, 0.25]]))
    ref = torch.log(torch.tensor([[0.25, 0.5]]))
    old = torch.log(torch.tensor([[0.4, 0.25]]))
    delta = (ref - logps)[0].tolist()
    k3 = [math.exp(d) - d - 1 for d in delta]
    plain = per_token_loss(logps, torch.zeros(1), old, ref, beta=0.1, kl_bias_correction=False)
    assert plain.kl[0].tolist() == pytest.approx(k3, abs=1e-6)
    assert plain.loss[0].tolist() == pytest.approx([0.1 * v for v in k3], abs=1e-6)
    corrected = per_token_loss(logps, torch.zeros(1), old, ref, beta=0.1, kl_bias_correction=True)
    assert corrected.kl[0].tolist() == pytest.approx([k3[0] * 0.5 / 0.4, k3[1] * 1.0], abs=1e-6)


def test_on_policy_gradient_is_minus_advantage_over_normaliser():
    logps = torch.randn(2, 3, requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages = torch.tensor([2.0, -1.0])
    loss = aggregate(per_token_loss(logps, advantages).loss, mask, "dapo", Totals(2, 5, 1, 3))
    loss.backward()
    expected = -(advantages[:, None] * mask) / 5
    torch.testing.assert_close(logps.grad, expected)


def test_dft_gradient_equals_p_times_grad_log_p():
    torch.manual_seed(0)
    logits = torch.randn(4, 7, requires_grad=True)
    targets = torch.tensor([1, 3, 0, 6])
    logp = torch.log_softmax(logits, -1).gather(-1, targets[:, None]).squeeze(-1)
    sft_token_loss(logp, "dft").sum().backward()
    probs = torch.softmax(logits.detach(), -1)
    onehot = torch.nn.functional.one_hot(targets, 7).float()
    p_t = probs.gather(-1, targets[:, None])
    expected = -p_t * (onehot - probs)  # -p_t * d log p_t / d logits
    torch.testing.assert_close(logits.grad, expected)
    # and the loss value is -sg(p) log p, the NLL rescaled by the token probability
    assert sft_token_loss(logp, "dft").tolist() == pytest.approx((-(p_t.squeeze(-1)) * logp).tolist(), abs=1e-6)


def test_dft_gradient_on_a_model_is_the_probability_weighted_nll_gradient(tiny_model_dir):
    from curate.lm.loading import load
    from curate.train.logprobs import response_logprobs

    lm = load(str(tiny_model_dir), dtype="float32", device="cpu")
    lm.model.double()
    items = [([1, 10, 11, 12], [20, 21, 2]), ([1, 30], [40, 2])]
    params = [p for p in lm.model.parameters()]

    def grads(loss):
        return torch.autograd.grad(loss, params, allow_unused=True)

    logps = torch.cat(response_logprobs(lm.model, items, 0, lm.device))
    dft = grads(sft_token_loss(logps, "dft").sum())
    expected = [torch.zeros_like(p) for p in params]
    for t in range(len(logps)):  # sum_t p_t * grad(-log p_t), one token at a time
        token_logp = torch.cat(response_logprobs(lm.model, items, 0, lm.device))[t]
        for acc, g in zip(expected, grads(-token_logp)):
            if g is not None:
                acc += token_logp.exp().item() * g
    for a, b in zip(dft, expected):
        torch.testing.assert_close(a if a is not None else torch.zeros_like(b), b)
    assert logps.dtype == torch.float64


def test_phi_weight_is_p_times_one_minus_p():
    logp = torch.log(torch.tensor([0.5, 0.9]))
    assert sft_token_loss(logp, "phi").tolist() == pytest.approx([-(0.25) * math.log(0.5), -(0.09) * math.log(0.9)])
    with pytest.raises(ValueError):
        sft_token_loss(logp, "bogus")
