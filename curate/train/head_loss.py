"""The LM head and the SFT loss in one pass: the gradient is computed in the forward, a slice of tokens at a time.

The SFT loss over response tokens t with targets y_t and hidden states h_t is
    L = sum_t c_t * (-log p(y_t | h_t)),   c_t = w_t * sg(f(p_t)) / n
(w_t the token-mask weight, n the step's kept tokens, f = 1 for `nll`, p_t for `dft`, p_t (1 - p_t)
for `phi`; see `curate.train.losses`). Its gradient with respect to the logits z_t = W h_t + b is
c_t (softmax(z_t) - onehot(y_t)), known as soon as a slice's logits are. So each slice of logits is
computed once, turned in place into that gradient, multiplied into the gradients of the hidden
states and of W (and b), and freed; the backward pass only scales the stored gradients by the
incoming one. This is the fused linear cross-entropy of Liger-Kernel (Hsu et al. 2024, arXiv
2410.10989). Against log-softmax + gather under autograd with each slice recomputed in the
backward (`curate.train.logprobs.head_logprobs`) it saves one LM-head matmul per token and most
elementwise passes over (tokens x vocab), and never holds more than one slice of logits.

It applies to plain heads (a `torch.nn.Linear`, no logit scaling or soft-capping); any other head
goes through `head_logprobs` and autograd, with the same result.
"""

from __future__ import annotations

from typing import Any

import torch

from curate.lm.parts import unwrap
from curate.train.logprobs import LOGIT_ELEMENTS, head_logprobs
from curate.train.losses import sft_token_loss, sft_token_weight

SCALED_HEAD_FIELDS = ("logit_scale", "final_logit_softcapping", "logits_scaling", "lm_head_multiplier",
                      "output_multiplier")


def fusable(model: Any) -> bool:
    """Whether the model's LM head is a plain linear layer whose logits the fused loss reproduces exactly."""
    base = unwrap(model)
    head = base.get_output_embeddings()
    config = base.config
    return type(head) is torch.nn.Linear and not any(getattr(config, name, None) for name in SCALED_HEAD_FIELDS)


class _FusedHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, scale, kind: str, rows_per_slice: int):
        want_hidden, want_weight, want_bias = ctx.needs_input_grad[:3]
        n = hidden.shape[0]
        logps = torch.empty(n, dtype=torch.float32, device=hidden.device)
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if want_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_weight else None
        grad_bias = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if want_bias else None
        for start in range(0, n, rows_per_slice):
            end = min(n, start + rows_per_slice)
            h, y = hidden[start:end], targets[start:end]
            logits = torch.nn.functional.linear(h, weight, bias).float()
            log_z = torch.logsumexp(logits, dim=-1)
            logp = logits.gather(1, y[:, None]).squeeze(1) - log_z
            coefficient = scale[start:end] * sft_token_weight(logp, kind)
            logps[start:end] = logp
            loss -= (coefficient * logp).sum()
            if not (want_hidden or want_weight or want_bias):
                continue
            grad = logits.sub_(log_z[:, None]).exp_().mul_(coefficient[:, None])  # c * softmax, in place
            grad[torch.arange(end - start, device=grad.device), y] -= coefficient
            grad = grad.to(weight.dtype)
            if want_hidden:
                grad_hidden[start:end] = grad @ weight
            if want_weight:
                if grad.dtype == torch.float32 and h.dtype == torch.float32:
                    grad_weight.addmm_(grad.t(), h)
                else:
                    grad_weight += (grad.t() @ h).float()
            if want_bias:
                grad_bias += grad.sum(0).float()
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
        ctx.mark_non_differentiable(logps)
        return loss, logps

    @staticmethod
    def backward(ctx, grad_loss, _grad_logps):
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        weight_dtype, bias_dtype = ctx.dtypes
        scaled = [None if g is None else g * grad_loss.to(g.dtype) for g in (grad_hidden, grad_weight, grad_bias)]
        if scaled[1] is not None:
            scaled[1] = scaled[1].to(weight_dtype)
        if scaled[2] is not None:
            scaled[2] = scaled[2].to(bias_dtype)
        return (*scaled, None, None, None, None)


def sft_head_loss(model: Any, hidden: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, kind: str,
                  n_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum_t w_t * loss_t / n_tokens, detached log p_t) for hidden states [R, d] that predict `targets` [R]."""
    scale = weights.to(torch.float32) / max(1, n_tokens)
    if not (fusable(model) and torch.is_grad_enabled()):
        logps, _ = head_logprobs(model, hidden, targets)
        return (sft_token_loss(logps, kind) * scale).sum(), logps.detach()
    head = unwrap(model).get_output_embeddings()
    rows = max(1, LOGIT_ELEMENTS // head.weight.shape[0])
    return _FusedHeadLoss.apply(hidden, head.weight, head.bias, targets, scale, kind, rows)
