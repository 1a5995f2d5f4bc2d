"""The fused LM-head SFT loss against log-softmax + gather under plain autograd."""

from __future__ import annotations

import pytest
import torch

from curate.train import head_loss
from curate.train.losses import sft_token_loss


def _model(bias: bool, tie: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tie)
    model = LlamaForCausalLM(config)
    if bias:
        model.lm_head = torch.nn.Linear(16, 97, bias=True)
    return model


def _reference(model, hidden, targets, weights, kind, n):
    logits = model.get_output_embeddings()(hidden).float()
    logps = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
    return (sft_token_loss(logps, kind) * weights).sum() / n, logps.detach()


def _grads(model, hidden):
    out = {"hidden": hidden.grad.clone()}
    out.update({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    hidden.grad = None
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("kind", ["nll", "dft", "phi"])
@pytest.mark.parametrize("bias", [False, True])
def test_fused_loss_and_gradients_match_autograd(kind, bias, monkeypatch):
    monkeypatch.setattr(head_loss, "LOGIT_ELEMENTS", 97 * 7)  # slices of 7 rows: 23 rows take 4 slices
    model = _model(bias)
    assert head_loss.fusable(model)
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(23, 16, generator=gen, requires_grad=True)
    targets = torch.randint(0, 97, (23,), generator=gen)
    weights = torch.tensor([1.0, 0.0, 1.0, 0.5] * 5 + [1.0, 1.0, 0.0])
    n = 17

    expected, expected_logps = _reference(model, hidden, targets, weights, kind, n)
    (3.0 * expected).backward()  # a non-unit upstream gradient is passed through
    reference = _grads(model, hidden)

    loss, logps = head_loss.sft_head_loss(model, hidden, targets, weights, kind, n)
    assert not logps.requires_grad
    (3.0 * loss).backward()
    fused = _grads(model, hidden)

    assert loss.item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-7)
    torch.testing.assert_close(logps, expected_logps, rtol=1e-6, atol=1e-6)
    assert fused.keys() == reference.keys() and "hidden" in fused
    for name in reference:
        torch.testing.assert_close(fused[name], reference[name], rtol=1e-5, atol=1e-7)


def test_scaled_heads_fall_back_to_autograd():
    model = _model(bias=False)
    model.config.final_logit_softcapping = 30.0
    assert not head_loss.fusable(model)
    hidden = torch.randn(5, 16, requires_grad=True)
    targets = torch.randint(0, 97, (5,))
    loss, logps = head_loss.sft_head_loss(model, hidden, targets, torch.ones(5), "nll", 5)
    logits = torch.tanh(model.get_output_embeddings()(hidden) / 30.0) * 30.0
    expected = -torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert hidden.grad is not None


def test_no_gradient_work_under_no_grad():
    model = _model(bias=False)
    hidden = torch.randn(4, 16)
    with torch.no_grad():
        loss, logps = head_loss.sft_head_loss(model, hidden, torch.tensor([1, 2, 3, 4]), torch.ones(4), "dft", 4)
    assert not loss.requires_grad and logps.shape == (4,)
