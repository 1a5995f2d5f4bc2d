"""Differentiable per-token log-probabilities of responses, computed with as little work as possible.

- Sequences are right-padded and run without an attention mask: in a causal model a real
  token never attends to the pad tokens after it, so the result equals unpadded scoring
  and keeps the fused causal attention kernel (the same argument as `curate.lm.scoring`).
- The LM head runs only on the positions that predict response tokens; when that would
  need more than `LOGIT_ELEMENTS` logits at once, it runs in slices under activation
  checkpointing, so a large vocabulary never holds a full (tokens x vocab) tensor.
- GRPO's G completions of one prompt share it: `group_logprobs` runs the prompt once,
  repeats its key/value cache G times, and runs only the completions on top (the cache
  stays in the autograd graph, so prompt-side gradients are exact). For a prompt of P
  tokens and completions of C, that is P + G*C tokens instead of G*(P + C).
- Logits are divided by the sampling temperature before the softmax, as TRL does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from curate.lm.parts import cache_keyword, decoder_of, unwrap

LOGIT_ELEMENTS = 1 << 25  # 32M float32 logits (128 MB) per LM-head slice


def _head(model: Any, hidden: torch.Tensor, temperature: float) -> torch.Tensor:
    base = unwrap(model)
    logits = base.get_output_embeddings()(hidden)
    logits = logits if logits.dtype == torch.float64 else logits.float()  # bf16/fp16 logits are upcast
    config = base.config
    scale = getattr(config, "logit_scale", None)
    if scale:
        logits = logits * scale
    cap = getattr(config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits / temperature if temperature != 1.0 else logits


def _slice_logprobs(model: Any, hidden: torch.Tensor, targets: torch.Tensor, temperature: float,
                    with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    logp_all = torch.log_softmax(_head(model, hidden, temperature), dim=-1)
    picked = logp_all.gather(-1, targets[:, None]).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    return picked, entropy


def head_logprobs(model: Any, hidden: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                  with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(target | hidden) for rows of `hidden` [N, d] (and the entropy of each row's distribution)."""
    vocab = unwrap(model).get_output_embeddings().weight.shape[0]
    step = max(1, LOGIT_ELEMENTS // vocab)
    if hidden.shape[0] <= step:
        return _slice_logprobs(model, hidden, targets, temperature, with_entropy)
    picked, entropies = [], []
    for start in range(0, hidden.shape[0], step):
        chunk, target = hidden[start:start + step], targets[start:start + step]
        if torch.is_grad_enabled() and chunk.requires_grad:
            lp, ent = checkpoint(_slice_logprobs, model, chunk, target, temperature, with_entropy, use_reentrant=False)
        else:
            lp, ent = _slice_logprobs(model, chunk, target, temperature, with_entropy)
        picked.append(lp)
        entropies.append(ent)
    return torch.cat(picked), (torch.cat(entropies) if with_entropy else None)


def response_states(model: Any, items: list[tuple[list[int], list[int]]], pad_id: int,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Last hidden states that predict the response tokens [R, d], and those tokens [R], from a right-padded batch."""
    width = max(len(p) + len(r) for p, r in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    for row, (prompt, response) in enumerate(items):
        ids[row, : len(prompt) + len(response)] = torch.tensor(prompt + response, dtype=torch.long)
    hidden = decoder_of(model)(input_ids=ids.to(device), use_cache=False).last_hidden_state
    rows = torch.cat([hidden[b, len(p) - 1: len(p) - 1 + len(r)] for b, (p, r) in enumerate(items)])
    targets = torch.tensor([t for _, r in items for t in r], dtype=torch.long, device=device)
    return rows, targets


def response_logprobs(model: Any, items: list[tuple[list[int], list[int]]], pad_id: int, device: torch.device,
                      temperature: float = 1.0) -> list[torch.Tensor]:
    """Per-token log p of each response given its prompt, for (prompt_ids, response_ids) pairs."""
    rows, targets = response_states(model, items, pad_id, device)
    flat, _ = head_logprobs(model, rows, targets, temperature)
    return list(torch.split(flat, [len(r) for _, r in items]))


def group_logprobs(model: Any, prompt_ids: list[int], completions: list[list[int]], pad_id: int,
                   device: torch.device, temperature: float = 1.0, with_entropy: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """[g, C] log-probs (0 past each completion's end) of g completions of one prompt, the prompt run once."""
    from transformers import DynamicCache

    decoder = decoder_of(model)
    config = unwrap(model).config
    g, width = len(completions), max(len(c) for c in completions)
    kwargs: dict[str, Any] = {"use_cache": True}
    if len(prompt_ids) > 1:  # the prompt but its last token, once; its cache is shared by the g completions
        cache = DynamicCache(config=config)
        keyword = cache_keyword(decoder)
        decoder(input_ids=torch.tensor([prompt_ids[:-1]], device=device), **{keyword: cache}, use_cache=True)
        cache.batch_repeat_interleave(g)
        kwargs[keyword] = cache
    ids = torch.full((g, width), pad_id, dtype=torch.long)
    for row, completion in enumerate(completions):  # position j predicts completion token j
        ids[row, : len(completion)] = torch.tensor(([prompt_ids[-1]] + completion)[: len(completion)], dtype=torch.long)
    hidden = decoder(input_ids=ids.to(device), **kwargs).last_hidden_state
    lengths = torch.tensor([len(c) for c in completions], device=device)
    mask = torch.arange(width, device=device)[None, :] < lengths[:, None]
    targets = torch.full((g, width), pad_id, dtype=torch.long)
    for row, completion in enumerate(completions):
        targets[row, : len(completion)] = torch.tensor(completion, dtype=torch.long)
    picked, entropy = head_logprobs(model, hidden[mask], targets.to(device)[mask], temperature, with_entropy)
    logps = picked.new_zeros((g, width)).masked_scatter(mask, picked)
    if entropy is not None:
        entropy = entropy.new_zeros((g, width)).masked_scatter(mask, entropy)
    return logps, entropy
