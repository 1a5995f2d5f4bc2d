"""Padding-free packed forward passes: several examples in one row, each attending only to itself.

A packed row concatenates examples; position ids restart at 0 for each one (so rotary
embeddings see every example at its own positions) and attention is block-diagonal causal:
a token attends to the earlier tokens of its own example and never across the boundary.
This is what TRL's padding-free packing and FlashAttention's varlen kernels compute.

transformers' SDPA path would express the boundaries as a materialised (tokens x tokens)
mask, whose cost grows with the square of the row length, not of each example. Instead,
`packed_attention(model)` switches the model, for the duration of training, to an attention
function registered with transformers' `AttentionInterface` that runs SDPA with
`is_causal=True` on each example's slice of the row (a varlen loop): exact, with the
attention work of the examples alone and no mask tensor. Sliding-window layers get a banded
mask on the examples longer than their window. Models whose attention does not go through
that interface (or does not use SDPA) are not switched: `supports_packing` says so and the
trainer falls back to padded batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate
from typing import Any

import torch

from curate.lm.parts import decoder_of, unwrap
from curate.train.logprobs import head_logprobs

PACKED_ATTENTION = "curate_packed_sdpa"
BOUNDS_KEYWORD = "segment_bounds"  # row offsets where each packed example starts, then the row length


def _segment_sdpa(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """SDPA on each packed example separately; plain causal SDPA on an unpacked batch (no bounds)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    bounds = kwargs.pop(BOUNDS_KEYWORD, None)
    if attention_mask is not None:
        raise ValueError("curate's packed attention takes no padding mask: it runs only inside packed SFT steps")
    if bounds is None:
        return sdpa_attention_forward(module, query, key, value, None, **kwargs)
    window = kwargs.pop("sliding_window", None)
    lengths = [end - start for start, end in zip(bounds[:-1], bounds[1:])]
    outputs = []
    # split, not slicing: its backward is one concatenation, where each slice's would write a full-size zero tensor
    for q, k, v in zip(query.split(lengths, dim=2), key.split(lengths, dim=2), value.split(lengths, dim=2)):
        mask = None
        if window is not None and q.shape[2] > window:  # keep k in (q - window, q], as transformers' sliding mask
            offsets = torch.arange(q.shape[2], device=query.device)
            distance = offsets[:, None] - offsets[None, :]
            mask = (distance >= 0) & (distance < window)
        out, _ = sdpa_attention_forward(module, q, k, v, mask, is_causal=mask is None, **kwargs)
        outputs.append(out)  # [batch, length, heads, head_dim]
    return torch.cat(outputs, dim=1), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_ATTENTION, _segment_sdpa)  # idempotent: the same name and function


def supports_packing(model: Any) -> bool:
    """Whether `model` can run packed rows exactly: SDPA attention dispatched through transformers' interface."""
    base = unwrap(model)
    config = getattr(base, "config", None)
    implementation = getattr(config, "_attn_implementation", None)
    can_set = getattr(type(base), "_can_set_attn_implementation", None)  # older transformers: padded batches
    return (implementation in ("sdpa", PACKED_ATTENTION) and callable(can_set) and bool(can_set())
            and hasattr(base, "set_attn_implementation"))


@contextmanager
def packed_attention(model: Any) -> Iterator[None]:
    """Run `model`'s attention through the per-example SDPA loop inside the block (re-entrant)."""
    base = unwrap(model)
    previous = base.config._attn_implementation
    if previous == PACKED_ATTENTION:
        yield
        return
    _register()
    base.set_attn_implementation(PACKED_ATTENTION)
    try:
        yield
    finally:
        base.set_attn_implementation(previous)


def packed_response_states(model: Any, items: list[tuple[list[int], list[int]]],
                           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Last hidden states that predict the response tokens [R, d], and those tokens [R], from one packed row."""
    lengths = [len(p) + len(r) for p, r in items]
    bounds = tuple(accumulate(lengths, initial=0))
    ids = torch.tensor([t for p, r in items for t in (*p, *r)], dtype=torch.long, device=device)[None]
    positions = torch.cat([torch.arange(n, device=device) for n in lengths])[None]
    with packed_attention(model):
        hidden = decoder_of(model)(input_ids=ids, position_ids=positions, use_cache=False,
                                   **{BOUNDS_KEYWORD: bounds}).last_hidden_state[0]
    # position start + len(prompt) - 1 + j predicts response token j
    index = torch.cat([torch.arange(len(r), device=device) + (start + len(p) - 1)
                       for (p, r), start in zip(items, bounds)])
    targets = torch.tensor([t for _, r in items for t in r], dtype=torch.long, device=device)
    return hidden[index], targets


def packed_response_logprobs(model: Any, items: list[tuple[list[int], list[int]]], device: torch.device,
                             temperature: float = 1.0) -> list[torch.Tensor]:
    """Per-token log p of each response given its prompt, the (prompt_ids, response_ids) pairs packed in one row.

    Equal, up to float rounding, to running each pair alone; the LM head sees only the
    positions that predict response tokens.
    """
    rows, targets = packed_response_states(model, items, device)
    flat, _ = head_logprobs(model, rows, targets, temperature)
    return list(torch.split(flat, [len(r) for _, r in items]))
