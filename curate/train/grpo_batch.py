"""The GRPO loss over one batch of episodes: chunking, masks, log-probs, forward and backward.

A batch is a list of groups (the completions of one prompt). Each group is run in
chunks of at most `batch_tokens` tokens with its prompt computed once
(`curate.train.logprobs.group_logprobs`); each chunk's loss is its share of the batch
loss as `curate.train.losses.aggregate` defines it, so summing the chunks' gradients
gives the gradient of the batch objective whatever the chunking (for `bnpo`, whose
normaliser is per micro-batch by definition, a chunk is the micro-batch). Truncated
completions get an all-zero mask when `mask_truncated_completions` is on (DAPO's overlong
filtering, TRL's `mask_truncated_completions`). A chunk whose gradient is exactly zero
(every advantage 0 with beta = 0, or every token masked) is skipped. Under torchrun each
rank runs the chunks `Dist.owns` (round-robin) against the whole batch's totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from curate.train.distributed import Dist
from curate.train.grpo_config import GRPOConfig
from curate.train.logprobs import group_logprobs
from curate.train.losses import Totals, aggregate, clip_stats, per_token_loss
from curate.train.rollouts import Group

Chunk = tuple[int, list[int]]  # (group index, episode indices)


def _episode_mask(group: Group, width: int, mask_truncated: bool) -> torch.Tensor:
    lengths = torch.tensor([0 if (mask_truncated and e.truncated) else len(e) for e in group])
    return (torch.arange(width)[None, :] < lengths[:, None]).float()


def _chunks(groups: Sequence[Group], batch_tokens: int) -> list[Chunk]:
    """(group index, episode indices) pieces of at most ~batch_tokens, longest prompts first."""
    pieces = []
    for g, group in enumerate(groups):
        width = max(len(e) for e in group)
        per = max(1, (batch_tokens - len(group[0].prompt_ids)) // max(1, width))
        order = sorted(range(len(group)), key=lambda i: len(group[i]))  # similar lengths share a chunk
        pieces.extend((g, order[s:s + per]) for s in range(0, len(group), per))
    return sorted(pieces, key=lambda p: -len(groups[p[0]][0].prompt_ids))


def plan_chunks(groups: list[Group], config: GRPOConfig) -> tuple[list[Chunk], list[torch.Tensor], Totals]:
    """The forward/backward chunks of a batch, each group's loss mask, and the totals the losses divide by."""
    widths = [max(len(e) for e in group) for group in groups]
    masks = [_episode_mask(group, w, config.mask_truncated_completions) for group, w in zip(groups, widths)]
    chunks = _chunks(groups, config.batch_tokens)
    totals = Totals(sequences=sum(len(g) for g in groups), tokens=int(sum(float(m.sum()) for m in masks)),
                    micro_batches=len(chunks), max_completion_length=config.max_completion_length)
    return chunks, masks, totals


def _live(groups: list[Group], masks: list[torch.Tensor], chunk: Chunk, beta: float) -> bool:
    """Whether a chunk's gradient can be non-zero (some advantage or KL, on some unmasked token)."""
    g, idx = chunk
    moving = beta != 0 or any(groups[g][i].advantage != 0 for i in idx)
    return moving and bool(masks[g][idx].sum() > 0)


def _chunk_logprobs(model: Any, groups: list[Group], chunk: Chunk, config: GRPOConfig,
                    pad_id: int, device: torch.device, entropy: bool = False):
    g, idx = chunk
    return group_logprobs(model, groups[g][0].prompt_ids, [groups[g][i].completion_ids for i in idx], pad_id,
                          device, config.temperature, entropy)


@torch.no_grad()
def fill_old_and_ref_logps(network: Any, reference: Any, groups: list[Group], config: GRPOConfig, pad_id: int,
                           device: torch.device, dist: Dist = Dist()) -> None:
    """Per-token log-probs under the sampling policy (for mu > 1) and the reference (for beta > 0),
    for the chunks this rank owns (the ones its `backward_batch` runs)."""
    chunks, masks, _ = plan_chunks(groups, config)
    for chunk in (c for i, c in enumerate(chunks) if dist.owns(i) and _live(groups, masks, c, config.beta)):
        g, idx = chunk
        old = _chunk_logprobs(network, groups, chunk, config, pad_id, device)[0] if config.num_iterations > 1 else None
        ref = None
        if config.beta and reference is not None:
            ref = _chunk_logprobs(reference, groups, chunk, config, pad_id, device)[0]
        elif config.beta:  # LoRA: the reference is the base model, adapters off
            with network.disable_adapter():
                ref = _chunk_logprobs(network, groups, chunk, config, pad_id, device)[0]
        for row, i in enumerate(idx):
            episode = groups[g][i]
            episode.old_logps = None if old is None else old[row, : len(episode)].clone()
            episode.ref_logps = None if ref is None else ref[row, : len(episode)].clone()


def _stack(values: list[torch.Tensor | None], width: int, device: torch.device) -> torch.Tensor | None:
    if any(v is None for v in values):
        return None
    out = torch.zeros((len(values), width), dtype=torch.float32, device=device)
    for row, value in enumerate(values):
        out[row, : len(value)] = value.to(device, torch.float32)
    return out


def backward_batch(network: Any, groups: list[Group], config: GRPOConfig, pad_id: int, device: torch.device,
                   scale: float = 1.0, dist: Dist = Dist()) -> dict[str, float]:
    """Forward and backward of the GRPO loss over the whole batch (gradients accumulate; no optimizer step).

    Returns masked sums for the metrics: loss (the batch loss value), kl, entropy, clip counts, tokens.
    `scale` multiplies the loss before backward ((1 - mu) under the CHORD hybrid).
    """
    chunks, masks, totals = plan_chunks(groups, config)
    sums = {"loss": 0.0, "kl": 0.0, "entropy": 0.0, "clip_low": 0.0, "clip_high": 0.0, "clip_region": 0.0,
            "tokens": 0.0, "chunks_trained": 0.0, "chunks_total": float(len(chunks))}
    for index, chunk in enumerate(chunks):
        if not dist.owns(index) or not _live(groups, masks, chunk, config.beta):
            continue  # its gradient is exactly zero
        g, idx = chunk
        episodes = [groups[g][i] for i in idx]
        logps, entropy = _chunk_logprobs(network, groups, chunk, config, pad_id, device, entropy=True)
        width = logps.shape[1]
        advantages = torch.tensor([e.advantage for e in episodes], dtype=torch.float32, device=device)
        mask = masks[g][idx][:, :width].to(device)
        token = per_token_loss(logps, advantages, _stack([e.old_logps for e in episodes], width, device),
                               _stack([e.ref_logps for e in episodes], width, device), config.epsilon,
                               config.epsilon_high, config.beta, config.kl_bias_correction)
        loss = aggregate(token.loss, mask, config.loss_type, totals)
        (scale * loss).backward()
        sums["loss"] += loss.item()
        for name, value in clip_stats(token.ratio, advantages, mask, config.epsilon, config.epsilon_high).items():
            sums[name] += value
        sums["entropy"] += float((entropy * mask).sum())
        if token.kl is not None:
            sums["kl"] += float((token.kl.detach() * mask).sum())
        sums["tokens"] += float(mask.sum())
        sums["chunks_trained"] += 1
    return sums
