"""GRPO with verifiable rewards, readable top to bottom (in the spirit of nanoGPT and GRPO-Zero).

Each step:
    1. draw `prompts_per_step` prompts and sample G completions of each (the `hf` backend,
       or any GenerationBackend passed in);
    2. score them with the reward functions (TRL's contract) and write every rollout to
       the prompt ledger (`curate.catalog.ledger`), which curricula read;
    3. dynamic sampling (DAPO): a `group_filter` drops groups whose outcome rewards (or, with
       `filter_on="reward"`, summed rewards) are all equal and more prompts are drawn, up to
       `max_refills` rounds; at the cap a warning is raised and the step trains on what it has;
    4. PODS: a `down_sampler` keeps m of the n completions of each group (max variance);
    5. group-normalised advantages (`scale_rewards` group | batch | none);
    6. `num_iterations` (mu) optimizer steps on the batch: the clipped surrogate with
       `epsilon`/`epsilon_high`, k3-KL to the frozen reference with weight `beta`, truncated
       completions masked, aggregated as `loss_type` grpo | bnpo | dr_grpo | dapo exactly as
       TRL 1.16 (`curate.train.losses`); old log-probs are taken before the first update;
    7. optionally CHORD's SFT term (Zhang et al. 2025, arXiv 2508.11408):
       loss = (1 - mu_t) * L_GRPO + mu_t * L_SFT on expert responses: a batch of `sft_batch`
       examples a step from an expert dataset (`expert_data`, `--sft-data`), or by default the
       batch prompts' own `response` column; mu_t follows `sft_schedule` (`chord`: the paper's
       linear warm-up from 0 to sft_weight over `sft_warmup` steps, then cosine decay to
       sft_weight_end over `sft_decay_steps`, then constant, as Trinity-RFT's mu_warmup_steps /
       mu_decay_steps / mu_peak / mu_valley). With an expert dataset the SFT term applies even in
       a step whose groups were all filtered out.

The prompts are a seeded stream over the data, or, given a `curriculum` (`curate loop`),
what its `pick(step, refill, count)` returns each time, its `observe(step, successes)`
hearing every step's [groups, G] success matrix: the curriculum picks per GRPO step, as
MoPPS, GRESO and AdaRFT do.

Under torchrun (`--nproc N`, `curate.train.distributed`) every rank draws the same prompts,
samples and scores the groups of its contiguous share, and all ranks then hold every group
(gathered in draw order), so filters, down-sampling and advantages see whole groups, exactly
as one process; rank 0 alone writes each rollout to the ledger. The update's chunks are dealt
round-robin over the ranks and the gradients summed: the step one process would take.

The filter and the down-sampler are plain callables (defaults: the pure functions in
`curate.train.group_filters`); this module imports no selector class (docs/architecture.md, "Layers").
Groups that cannot move the weights (every advantage 0 and beta = 0, or every token
masked) are not run through the model: their gradient is exactly zero.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import xxhash

from curate.catalog.ledger import ledger_key, record_rollouts
from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace
from curate.errors import BadUsage
from curate.lm.generation import GenerationBackend, HFBackend, SamplingParams
from curate.lm.loading import load
from curate.lm.templates import encode_pair
from curate.train import group_filters
from curate.train.checkpoints import check_out_dir, restore, save_model_folder, save_on_main
from curate.train.data import describe, load_prompts, prompt_ids, stream_slice
from curate.train.distributed import Dist, barrier, gather, setup, sum_gradients, sum_values
from curate.train.grpo_batch import backward_batch, fill_old_and_ref_logps
from curate.train.grpo_config import GRPOConfig
from curate.train.logprobs import response_logprobs
from curate.train.losses import group_advantages, sft_token_loss
from curate.train.metrics import MetricsLogger
from curate.train.optim import add_lora, adamw, lr_at, set_lr
from curate.train.provenance import write_training_record
from curate.train.rewards import (VERIFIABLE, CheckedReward, RewardFunc, get_reward, graders_of, outcome_index,
                                  reward_spec_name)
from curate.train.rollouts import (Group, generate_groups, ledger_rollouts, outcome_matrix, reward_matrix, score_groups,
                                   success_matrix)

GroupFilter = Callable[[np.ndarray], np.ndarray]  # [groups, G] rewards -> [groups] bool: keep


class StepCurriculum(Protocol):
    """Picks each GRPO step's prompts (by id) and hears how they went (curate.loop passes one)."""

    def pick(self, step: int, refill: int, count: int) -> list[str]: ...

    def observe(self, step: int, successes: np.ndarray) -> None: ...
DownSampler = Callable[[np.ndarray, int], np.ndarray]  # ([groups, n] rewards, m) -> [groups, m] indices


RESUME_FIXED = ("prompts_per_step", "num_generations", "pods_m", "seed", "template", "lora", "lora_r",
                "lora_alpha", "lora_targets", "dtype", "loss_type", "scale_rewards", "beta", "num_iterations")


def sft_weight_at(step: int, config: GRPOConfig) -> float:
    """CHORD's mu for this step: constant, decaying from sft_weight to sft_weight_end, or (`chord`)
    warming up from 0 to sft_weight over sft_warmup steps, then decaying by a half cosine."""
    end = config.sft_weight if config.sft_weight_end is None else config.sft_weight_end
    if config.sft_schedule == "chord":
        if step < config.sft_warmup:
            return config.sft_weight * step / config.sft_warmup
        decay = config.steps - config.sft_warmup if config.sft_decay_steps is None else config.sft_decay_steps
        if step >= config.sft_warmup + decay or decay <= 0:
            return end
        progress = (step - config.sft_warmup) / decay
        return end + (config.sft_weight - end) * 0.5 * (1 + math.cos(math.pi * progress))
    progress = step / max(1, config.steps - 1)
    if config.sft_schedule == "linear":
        return config.sft_weight + (end - config.sft_weight) * progress
    if config.sft_schedule == "cosine":
        return end + (config.sft_weight - end) * 0.5 * (1 + math.cos(math.pi * progress))
    return config.sft_weight


class DynamicSamplingWarning(UserWarning):
    """Dynamic sampling hit its refill cap with fewer informative groups than asked for."""


def train_grpo(
    model: str,
    data: DatasetVersion | list[dict],
    out_dir: Path,
    config: GRPOConfig,
    reward: str | RewardFunc | Sequence[str | RewardFunc] = "math",
    *,
    ws: Workspace | None = None,
    resume: bool = False,
    progress: Callable[[int, dict], None] | None = None,
    group_filter: GroupFilter | None = None,
    down_sampler: DownSampler | None = None,
    backend: GenerationBackend | None = None,
    curriculum: StepCurriculum | None = None,
    expert_data: DatasetVersion | list[dict] | None = None,
) -> dict[str, Any]:
    """Train `model` with GRPO on the prompts of `data`; save the model folder to `out_dir`; return statistics."""
    start_time = time.perf_counter()
    config.check()
    out_dir = Path(out_dir)
    dist, device_name = setup(config.device)
    checkpoint = check_out_dir(out_dir, resume)
    if checkpoint is not None:
        changed = [k for k in RESUME_FIXED if k in checkpoint.config and checkpoint.config[k] != getattr(config, k)]
        if changed:
            raise BadUsage("--resume with different settings: " + ", ".join(changed),
                           hint="resume with the checkpoint's settings (OUT/checkpoint/state.json), or a new --out")
    barrier(dist)  # every rank has read the folder before rank 0 writes to it
    torch.manual_seed(config.seed)

    # Rewards, filters, model, reference, prompts.
    specs = [reward] if isinstance(reward, str) or callable(reward) else list(reward)
    rewards = [CheckedReward(get_reward(s), name=s if ":" not in s else "") if isinstance(s, str) else CheckedReward(s)
               for s in specs]
    weights = list(config.reward_weights) if config.reward_weights is not None else [1.0] * len(rewards)
    if len(weights) != len(rewards):
        raise BadUsage(f"{len(weights)} reward weights for {len(rewards)} rewards",
                       hint="give one --reward-weight per --reward")
    names = [reward_spec_name(s) for s in specs]
    outcome = outcome_index(specs, config.outcome_reward)
    on_outcome = config.filter_on == "outcome" or (config.filter_on == "auto" and (
        outcome is not None or (len(names) == 1 and names[0] in VERIFIABLE)))
    if config.dynamic_sampling and group_filter is None:
        group_filter = group_filters.nonzero_variance_groups
    if down_sampler is not None and config.pods_m is None:
        raise BadUsage("a down-sampler needs pods_m, the number of completions to keep", hint="--pods-m M")
    if config.pods_m is not None and down_sampler is None:
        down_sampler = group_filters.max_variance_down_sample

    lm = load(model, dtype=config.dtype, device=device_name)
    tokenizer, device = lm.tokenizer, lm.device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    room = lm.max_length - config.max_completion_length  # prompts must leave room for the completion
    if room < 1:
        raise BadUsage(f"max_completion_length {config.max_completion_length} fills the model's whole context "
                       f"({lm.max_length} tokens)", hint="lower --max-completion-length")
    rows, counts = load_prompts(data, tokenizer, config.template, min(config.max_prompt_length or room, room))
    experts = None
    if expert_data is not None:
        experts, _ = load_prompts(expert_data, tokenizer, config.template, min(config.max_prompt_length or room, room))
        experts = [row for row in experts if row.get("response")]
        if not experts:
            raise BadUsage(f"--sft-data {describe(expert_data)}: no row has a response to imitate",
                           hint="give a dataset with a response column (expert solutions)")
    elif config.sft_weight > 0 and not counts["with_response"]:
        raise BadUsage("--sft-weight needs expert responses, but no prompt in the data has one",
                       hint="ingest data with a response column, pass --sft-data REF, or set --sft-weight 0")
    reference = copy.deepcopy(lm.model).eval().requires_grad_(False) if config.beta and not config.lora else None
    network = add_lora(lm.model, config.lora_r, config.lora_alpha, config.lora_dropout,
                       config.lora_targets) if config.lora else lm.model
    optimizer = adamw(network, config.lr, config.weight_decay)
    backend = backend or HFBackend(dataclasses.replace(lm, model=network),
                                   batch_size=config.generation_batch_size or
                                   config.prompts_per_step * config.num_generations, template=config.template)
    n = config.num_generations
    g_train = config.pods_m or n

    # Resume state: the step, where the prompt stream is, the run's ledger name.
    start, cursor, tokens_seen = 0, 0, 0
    model_key = config.ledger_key or ledger_key(config.model_key or lm.model_hash, list(zip(names, weights)),
                                                config.success_threshold,
                                                names[outcome] if outcome is not None else None)
    position = {str(row["id"]): i for i, row in enumerate(rows)}
    run_name = config.run_name or _run_name(out_dir, config, model_key, [r.name for r in rewards])
    if checkpoint is not None:
        restore(checkpoint, network, optimizer)
        start = checkpoint.step
        cursor = int(checkpoint.state["cursor"])
        tokens_seen = int(checkpoint.state.get("tokens", 0))
        run_name = checkpoint.state["run"]
    dataset_ref = data.ref if isinstance(data, DatasetVersion) else None
    logger = MetricsLogger(out_dir, resume_step=start if checkpoint else None) if dist.main else None
    run_config = {**asdict(config), "world_size": dist.world}
    history: list[float] = []

    for step in range(start, config.steps):
        t0 = time.perf_counter()

        # 1-3. Rollouts, rewards, ledger; dynamic sampling refills until enough groups vary.
        network.eval()
        if hasattr(backend, "sync_weights"):  # e.g. a vLLM engine that holds its own copy of the weights
            backend.sync_weights(network)
        sampled: list[Group] = []
        kept: list[Group] = []
        rounds, capped, generation_time = 0, False, 0.0
        while True:
            if curriculum is None:
                picks = stream_slice(len(rows), config.seed, cursor, config.prompts_per_step)
                cursor += config.prompts_per_step
            else:
                picks = [position[i] for i in curriculum.pick(step, rounds, config.prompts_per_step) if i in position]
            sampling = SamplingParams(temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
                                      max_new_tokens=config.max_completion_length,
                                      seed=config.seed * 1_000_003 + step * 1009 + rounds + dist.rank * 7919)
            tg = time.perf_counter()
            share = dist.share(len(picks))  # this rank's prompts; whole groups, never split
            groups = generate_groups(backend, [rows[picks[i]] for i in share], n, sampling,
                                     first_draw=rounds * config.prompts_per_step + share.start,
                                     encode=lambda prompt: prompt_ids(prompt, tokenizer, config.template))
            generation_time += time.perf_counter() - tg
            score_groups(groups, rewards, weights, outcome)
            groups = gather(groups, dist)  # every rank: all groups, in draw order
            if ws is not None and dist.main:
                record_rollouts(ws, ledger_rollouts(groups, model_key, run_name, step, n, dataset_ref,
                                                    config.success_threshold,
                                                    graders_of(rewards)),
                                config.success_threshold, config.decay)
            sampled.extend(groups)
            if group_filter is None:
                kept = groups
                break
            keep = np.asarray(group_filter(outcome_matrix(groups) if on_outcome else reward_matrix(groups)), dtype=bool)
            kept.extend([g for g, k in zip(groups, keep) if k][: config.prompts_per_step - len(kept)])
            if len(kept) >= config.prompts_per_step:
                break
            if rounds >= config.max_refills:
                capped = True
                warnings.warn(f"step {step + 1}: dynamic sampling kept {len(kept)} of {config.prompts_per_step} "
                              f"groups after {rounds + 1} rounds (max_refills={config.max_refills}); training on "
                              f"{'those' if kept else 'nothing this step'}", DynamicSamplingWarning, stacklevel=2)
                break
            rounds += 1
        network.train()
        if curriculum is not None:
            curriculum.observe(step, success_matrix(sampled, config.success_threshold))

        # 4-5. PODS down-sampling, then advantages within each training group.
        if down_sampler is not None and kept:
            picked = np.asarray(down_sampler(reward_matrix(kept), g_train))
            kept = [[group[int(i)] for i in idx] for group, idx in zip(kept, picked)]
        if kept:
            batch_rewards = torch.tensor([e.reward for group in kept for e in group], dtype=torch.float32)
            advantages, _ = group_advantages(batch_rewards, len(kept[0]), config.scale_rewards)
            for episode, advantage in zip((e for group in kept for e in group), advantages.tolist()):
                episode.advantage = advantage

        # 6-7. mu optimizer steps over the batch (plus the SFT term on expert responses).
        sft_w = sft_weight_at(step, config) if config.sft_weight > 0 else 0.0
        sft_rows = None
        if experts is not None and sft_w > 0:
            batch = config.sft_batch or config.prompts_per_step
            sft_rows = [experts[i] for i in stream_slice(len(experts), config.seed + 1, step * batch, batch)]
        stats = _optimise(network, reference, optimizer, kept, config, step, sft_w, tokenizer, pad_id, device,
                          sft_rows, dist)

        # Metrics (TRL's names), checkpoint.
        seconds = time.perf_counter() - t0
        all_episodes = [e for group in sampled for e in group]
        all_rewards = np.array([e.reward for e in all_episodes], dtype=np.float64)
        lengths = np.array([len(e) for e in all_episodes], dtype=np.float64)
        truncated = np.array([e.truncated for e in all_episodes], dtype=bool)
        group_std = np.array([np.nanstd(r) if np.sum(~np.isnan(r)) > 1 else 0.0 for r in reward_matrix(sampled)])
        completion_tokens = int(lengths.sum())
        tokens_seen += completion_tokens + sum(len(g[0].prompt_ids) * len(g) for g in sampled)
        metrics = {"reward": float(np.nanmean(all_rewards)) if np.any(~np.isnan(all_rewards)) else math.nan,
                   "reward_std": float(np.nanstd(all_rewards, ddof=1)) if np.sum(~np.isnan(all_rewards)) > 1 else 0.0,
                   "frac_reward_zero_std": float(np.mean(np.isclose(group_std, 0.0))),
                   **{f"rewards/{func.name}/mean": _nanmean([e.rewards[k] for e in all_episodes])
                      for k, func in enumerate(rewards)},
                   **{f"rewards/{func.name}/none": sum(e.rewards[k] is None for e in all_episodes)
                      for k, func in enumerate(rewards)},
                   **{f"rewards/{func.name}/grader": func.grader for func in rewards if func.grader},
                   "completions/mean_length": float(lengths.mean()), "completions/min_length": float(lengths.min()),
                   "completions/max_length": float(lengths.max()), "completions/clipped_ratio": float(truncated.mean()),
                   "num_tokens": tokens_seen, "tokens_per_second": completion_tokens / max(seconds, 1e-9),
                   "rollout_tokens_per_second": completion_tokens / max(generation_time, 1e-9),
                   "step_time": seconds, "generation_time": generation_time,
                   "groups/sampled": len(sampled), "groups/trained": len(kept),
                   "completions/trained": sum(len(g) for g in kept), **stats}
        if group_filter is not None:
            metrics.update({"dynamic_sampling/rounds": rounds + 1, "dynamic_sampling/capped": int(capped)})
        if sft_w:
            metrics["sft_weight"] = sft_w
        history.append(metrics["reward"])
        if dist.main:
            logger.log(step + 1, metrics)
            if progress is not None:
                progress(step + 1, metrics)
        state = {"cursor": cursor, "run": run_name, "tokens": tokens_seen}
        if config.save_every and (step + 1) % config.save_every == 0 and step + 1 < config.steps:
            save_on_main(dist, out_dir, network, optimizer, step + 1, run_config, state)

    save_on_main(dist, out_dir, network, optimizer, config.steps, run_config,
                 {"cursor": cursor, "run": run_name, "tokens": tokens_seen})
    if dist.main:
        save_model_folder(network, tokenizer, out_dir)
        write_training_record(out_dir, "grpo", model, data)
        logger.close()
    barrier(dist)
    window = max(1, len(history) // 4)
    return {"model": model, "data": describe(data), "out_dir": str(out_dir), "steps": config.steps,
            "resumed_from": start if checkpoint else None, "run": run_name, "model_key": model_key,
            "rewards": [r.name for r in rewards], "reward_first": _nanmean(history[:window]),
            "reward_last": _nanmean(history[-window:]), "reward_nones": sum(r.nones for r in rewards),
            "prompts": len(rows), "prompts_too_long": counts["too_long"], "tokens": tokens_seen,
            "seconds": round(time.perf_counter() - start_time, 2)}


def _run_name(out_dir: Path, config: GRPOConfig, model_key: str, rewards: list[str]) -> str:
    """The ledger's name for a run: the same folder, model and settings give the same name (so a run
    restarted before its first checkpoint dedupes against what it already recorded); anything else differs."""
    settings = {k: v for k, v in asdict(config).items() if k not in ("steps", "save_every")}
    key = json.dumps({"out": str(out_dir.resolve()), "model": model_key, "rewards": rewards, "config": settings},
                     sort_keys=True, default=str)
    return f"{out_dir.name}-{xxhash.xxh3_64_hexdigest(key.encode())[:8]}"


def _nanmean(values: Sequence[float | None]) -> float:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(clean)) if clean else math.nan


def _optimise(network: Any, reference: Any, optimizer: torch.optim.Optimizer, groups: list[Group],
              config: GRPOConfig, step: int, sft_w: float, tokenizer: Any, pad_id: int,
              device: torch.device, sft_rows: list[dict] | None = None, dist: Dist = Dist()) -> dict[str, float]:
    """`num_iterations` optimizer steps on the batch; returns the loss-side metrics.
    Each rank runs the chunks it owns; gradients and metric sums are added over the ranks."""
    experts = (_expert_items(sft_rows, tokenizer, config) if sft_rows is not None else
               _expert_items([group[0].row for group in groups], tokenizer, config)) if sft_w > 0 else []
    if not groups and not experts:
        return {}
    if groups and (config.num_iterations > 1 or config.beta):
        fill_old_and_ref_logps(network, reference, groups, config, pad_id, device, dist)
    expert_tokens = sum(len(r) for _, r in experts)
    totals: dict[str, float] = {}
    for iteration in range(config.num_iterations):
        optimizer_step = step * config.num_iterations + iteration
        set_lr(optimizer, lr_at(optimizer_step, config.steps * config.num_iterations, config.lr, config.warmup,
                                config.min_lr_ratio, config.lr_schedule))
        sums = (backward_batch(network, groups, config, pad_id, device, scale=1.0 - sft_w, dist=dist) if groups
                else {"chunks_total": 0.0})
        if experts:  # CHORD: sft_w * token-mean SFT loss over the expert responses of this batch's prompts
            sums["sft_loss"] = 0.0
            for index, start in enumerate(range(0, len(experts), 8)):
                if not dist.owns(index):
                    continue
                part = experts[start:start + 8]
                logps = torch.cat(response_logprobs(network, part, pad_id, device, 1.0))
                sft = sft_token_loss(logps, config.sft_loss).sum() / max(1, expert_tokens)
                (sft_w * sft).backward()
                sums["sft_loss"] += sft.item()
        sum_gradients(network.parameters(), dist)
        sums = {**sum_values({k: v for k, v in sums.items() if k != "chunks_total"}, dist),
                "chunks_total": sums["chunks_total"]}
        sums["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(network.parameters(),
                                                                 config.grad_clip or float("inf")))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for key, value in sums.items():
            totals[key] = totals.get(key, 0.0) + value
    iters, tokens = config.num_iterations, max(1.0, totals.get("tokens", 0.0))
    total = {key: totals.get(key, 0.0) for key in ("loss", "entropy", "clip_low", "clip_high", "clip_region",
                                                    "chunks_trained", "chunks_total", "kl")}  # none without groups
    stats = {"loss": total["loss"] / iters, "grad_norm": totals["grad_norm"] / iters,
             "learning_rate": optimizer.param_groups[0]["lr"], "entropy": total["entropy"] / tokens,
             "clip_ratio/low_mean": total["clip_low"] / tokens, "clip_ratio/high_mean": total["clip_high"] / tokens,
             "clip_ratio/region_mean": total["clip_region"] / tokens,
             "chunks/trained": total["chunks_trained"] / iters, "chunks/total": total["chunks_total"] / iters}
    if config.beta:
        stats["kl"] = total["kl"] / tokens
    if experts:
        stats["sft_loss"] = totals["sft_loss"] / iters
    return stats


def _expert_items(rows: list[dict], tokenizer: Any, config: GRPOConfig) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, response ids) of the rows that carry an expert response, each prompt once."""
    seen, items = set(), []
    for row in rows:
        if row.get("response") and row["id"] not in seen:
            seen.add(row["id"])
            limit = (config.max_prompt_length or 0) + config.max_completion_length
            encoded = encode_pair(row["prompt"], row["response"], tokenizer, config.template, add_eos=True,
                                  max_length=limit)
            if encoded.response_ids:
                items.append((encoded.prompt_ids, encoded.response_ids))
    return items
