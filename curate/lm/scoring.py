"""Batched scoring: per-token log-probs of responses and last-layer hidden states.

Batches are right-padded, so every real token sees exactly the context it would see
alone (causal attention never looks right); results match one-at-a-time scoring up
to float rounding. The LM head is applied only to the positions that predict
response tokens, in slices, so a large vocabulary never needs a full
(batch x length x vocab) logits tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from curate.lm.batching import map_bucketed
from curate.lm.loading import LM
from curate.lm.templates import Encoded

CPU_TOKEN_BUDGET = 4_096  # larger batches spill the CPU caches: slower per token (docs/decisions.md)
ACCELERATOR_TOKEN_BUDGET = 16_384
LOGIT_ELEMENTS = 1 << 25  # logits computed at once: 32M floats, 128 MB


def default_token_budget(lm: LM) -> int:
    return CPU_TOKEN_BUDGET if lm.device.type == "cpu" else ACCELERATOR_TOKEN_BUDGET


def _decoder(model):
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    return decoder if decoder is not None else model.base_model


def _last_hidden(lm: LM, batch: list[Encoded]) -> tuple[torch.Tensor, list[int]]:
    """Post-norm last-layer hidden states [B, T, d] for right-padded inputs."""
    lengths = [len(item) for item in batch]
    width = max(lengths)
    pad = lm.tokenizer.pad_token_id or 0
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    for row, item in enumerate(batch):
        tokens = item.input_ids
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    # Right padding: a real token never attends to the pads after it, so plain causal attention
    # (no padding mask) gives the same states and keeps the fused SDPA kernel.
    out = _decoder(lm.model)(input_ids=ids.to(lm.device))
    return out.last_hidden_state, lengths


def _response_positions(item: Encoded) -> slice:
    """Positions whose next-token prediction is a response token."""
    start = len(item.prompt_ids) - 1
    return slice(start, start + len(item.response_ids))


def _logits(lm: LM, hidden: torch.Tensor) -> torch.Tensor:
    logits = lm.model.get_output_embeddings()(hidden).float()
    config = lm.model.config
    scale = getattr(config, "logit_scale", None)  # Cohere multiplies
    if scale:
        logits = logits * scale
    divisor = getattr(config, "logits_scaling", None)  # Granite divides
    if divisor:
        logits = logits / divisor
    multiplier = getattr(config, "lm_head_multiplier", None)  # Falcon-H1
    if multiplier:
        logits = logits * multiplier
    cap = getattr(config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def gather_logprobs(lm: LM, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target | hidden) for rows of `hidden` [N, d], a slice of rows at a time."""
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    step = max(1, LOGIT_ELEMENTS // vocab)
    out = []
    for start in range(0, hidden.shape[0], step):
        logits = _logits(lm, hidden[start:start + step])
        picked = logits.gather(-1, targets[start:start + step, None]).squeeze(-1)
        out.append(picked - torch.logsumexp(logits, dim=-1))
    return torch.cat(out) if out else hidden.new_zeros(0, dtype=torch.float32)


@torch.inference_mode()
def _logprob_batch(lm: LM, batch: list[Encoded]) -> list[np.ndarray]:
    hidden, _ = _last_hidden(lm, batch)
    rows, targets, sizes = [], [], []
    for b, item in enumerate(batch):
        span = _response_positions(item)
        rows.append(hidden[b, span])
        targets.extend(item.response_ids)
        sizes.append(len(item.response_ids))
    flat = gather_logprobs(lm, torch.cat(rows), torch.tensor(targets, dtype=torch.long, device=lm.device))
    return [part.cpu().numpy() for part in torch.split(flat, sizes)]


def token_logprobs(
    lm: LM, items: Iterable[Encoded], token_budget: int | None = None, window: int = 4096,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[np.ndarray]:
    """log p(response token | prompt, earlier response tokens), one float32 array per item, in input order.

    `on_batch(n)`: called after each batch of n items (for progress).
    """
    budget = token_budget or default_token_budget(lm)
    return map_bucketed(items, len, lambda batch: _logprob_batch(lm, batch), budget, window, on_batch=on_batch)


@torch.inference_mode()
def _hidden_batch(lm: LM, batch: list[Encoded], positions: str, pool: str | None) -> list[np.ndarray]:
    hidden, lengths = _last_hidden(lm, batch)
    out = []
    for b, item in enumerate(batch):
        span = _response_positions(item) if positions == "response" else slice(0, lengths[b])
        states = hidden[b, span].float()
        if pool == "mean":
            states = states.mean(dim=0) if states.shape[0] else states.new_zeros(states.shape[-1])
        elif pool == "last":
            states = states[-1] if states.shape[0] else states.new_zeros(states.shape[-1])
        out.append(states.cpu().numpy())
    return out


def hidden_states(
    lm: LM,
    items: Iterable[Encoded],
    positions: str = "response",
    pool: str | None = None,
    token_budget: int | None = None,
    window: int = 4096,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[np.ndarray]:
    """Last-layer (pre-logit) hidden states, in input order.

    positions="response": the states that predict the response tokens ([R, d] per item);
    positions="all": every token. pool="mean" or "last" reduces each item to one [d] vector.
    """
    if positions not in ("response", "all"):
        raise ValueError(f"positions must be 'response' or 'all', not {positions!r}")
    if pool not in (None, "mean", "last"):
        raise ValueError(f"pool must be None, 'mean' or 'last', not {pool!r}")
    budget = token_budget or default_token_budget(lm)
    return map_bucketed(items, len, lambda batch: _hidden_batch(lm, batch, positions, pool), budget, window,
                        on_batch=on_batch)
