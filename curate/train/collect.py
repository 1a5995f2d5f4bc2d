"""Fill the prompt ledger: G rollouts of every prompt of a dataset under one model (`curate rollouts`).

Prompts already sampled under the model key are skipped unless `refresh` is set, and
each chunk of prompts is written to the ledger in one transaction with ids that depend
only on (model key, round, prompt, sample), so a run killed midway and started again
continues where it stopped without paying twice or counting anything twice. A refresh
is a new round: its rollouts get new ids and add to the statistics.

With a server backend (`--backend openai --base-url URL ...`, any number of servers) no
weights are loaded: the ledger key names the served model (`served:NAME`), so pass rates
measured through servers and through local weights are never pooled, prompts are not
length-filtered locally (the server refuses what does not fit), and a completion's length
is its token count when the server returns token ids (vLLM with `return_token_ids`), else
unknown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from curate.catalog.ledger import ledger_key, record_rollouts
from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace, query_frame
from curate.errors import BadUsage
from curate.lm.generation import GenerationBackend, HFBackend, SamplingParams
from curate.lm.loading import load
from curate.train.data import load_prompts
from curate.train.group_filters import nonzero_variance_groups
from curate.train.rewards import CheckedReward, get_reward, graders_of, outcome_index, reward_spec_name
from curate.train.rollouts import generate_groups, ledger_rollouts, reward_matrix, score_groups

RUN = "collect"


@dataclass
class CollectConfig:
    num_generations: int = 8  # rollouts per prompt (G)
    max_completion_length: int = 256
    max_prompt_length: int | None = 1024
    temperature: float = 1.0
    top_p: float = 1.0
    prompts_per_batch: int = 16
    template: str = "auto"
    refresh: bool = False
    success_threshold: float = 0.5  # a rollout succeeds when its outcome reward (math/exact/code among several) is >= this
    model_key: str | None = None  # the policy's key (default: the model's hash); the ledger key adds the reward
    reward_weights: tuple[float, ...] | None = None  # one per reward (None: 1 each)
    seed: int = 0
    dtype: str = "auto"
    device: str = "auto"


def sampled_prompts(ws: Workspace, model_key: str) -> tuple[set[str], int]:
    """Prompt ids with any rollout under `model_key` (from this command or a training run), and the
    latest round of this command."""
    with ws.catalog() as con:
        frame = query_frame(con, "SELECT prompt_id, max(CASE WHEN run = ? THEN step END) AS round FROM rollouts "
                                 "WHERE model_key = ? GROUP BY prompt_id", [RUN, model_key])
    if frame.height == 0:
        return set(), -1
    last = frame["round"].max()
    return set(frame["prompt_id"].to_list()), -1 if last is None else int(last)


def served_model(backend: GenerationBackend | None) -> str | None:
    """The model name a server backend serves (None for backends that hold local weights)."""
    identity = getattr(backend, "identity", None)
    return identity.model if getattr(identity, "backend", None) == "openai" else None


def collect_rollouts(
    ws: Workspace,
    data: DatasetVersion,
    model: str,
    reward: str | Sequence[str] = "math",
    config: CollectConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    backend: GenerationBackend | None = None,
) -> dict:
    """Sample, score and record G rollouts for each prompt not yet in the ledger (all of them with refresh);
    several rewards are summed with their weights, as GRPO does."""
    config = config or CollectConfig()
    k = config.num_generations
    if k < 1 or config.prompts_per_batch < 1:
        raise BadUsage("--num-generations and --prompts-per-batch must be >= 1")
    if config.max_prompt_length is not None and config.max_prompt_length < 1:
        raise BadUsage(f"--max-prompt-length must be >= 1, not {config.max_prompt_length}")
    start = time.perf_counter()
    specs = [reward] if isinstance(reward, str) else list(reward)
    weights = list(config.reward_weights) if config.reward_weights else [1.0] * len(specs)
    if len(weights) != len(specs):
        raise BadUsage(f"{len(weights)} reward weights for {len(specs)} rewards",
                       hint="give one --reward-weight per --reward")
    scorers = [CheckedReward(get_reward(s), name=s if ":" not in s else "") for s in specs]
    outcome = outcome_index(specs)
    names = [reward_spec_name(s) for s in specs]
    reward_specs = list(zip(names, weights))
    outcome_name = names[outcome] if outcome is not None else None
    served = served_model(backend)
    if served is not None:
        tokenizer, context, limit = None, None, config.max_prompt_length
        model_key = ledger_key(config.model_key or f"served:{served}", reward_specs, config.success_threshold,
                               outcome_name)
    else:
        lm = load(model, dtype=config.dtype, device=config.device)
        tokenizer, context = lm.tokenizer, lm.max_length
        model_key = ledger_key(config.model_key or lm.model_hash, reward_specs, config.success_threshold,
                               outcome_name)
        backend = backend or HFBackend(lm, batch_size=config.prompts_per_batch * k, template=config.template)
        room = lm.max_length - config.max_completion_length
        if room < 1:
            raise BadUsage(f"max_completion_length {config.max_completion_length} fills the model's context "
                           f"({lm.max_length})", hint="lower --max-completion-length")
        limit = min(config.max_prompt_length or room, room)
    rows, counts = load_prompts(data, tokenizer, config.template, limit)
    grader = graders_of(scorers)
    done, last_round = sampled_prompts(ws, model_key)
    round_ = last_round + 1 if config.refresh else max(last_round, 0)
    todo = rows if config.refresh else [r for r in rows if str(r["id"]) not in done]
    written, rewards = 0, []
    flat_groups = mixed_groups = 0
    for begin in range(0, len(todo), config.prompts_per_batch):
        chunk = todo[begin:begin + config.prompts_per_batch]
        sampling = SamplingParams(temperature=config.temperature, top_p=config.top_p,
                                  max_new_tokens=config.max_completion_length,
                                  seed=config.seed * 1_000_003 + round_ * 7919 + begin)
        groups = generate_groups(backend, chunk, k, sampling, need_token_ids=False)
        for group in groups:  # ids depend on the prompt, not on its place in the chunk
            for episode in group:
                episode.draw = 0
        score_groups(groups, scorers, weights, outcome)
        written += record_rollouts(ws, ledger_rollouts(groups, model_key, RUN, round_, k, data.ref,
                                                       config.success_threshold, grader), config.success_threshold)
        matrix = reward_matrix(groups)
        rewards.extend(matrix[~np.isnan(matrix)].tolist())
        mixed = int(nonzero_variance_groups(matrix).sum())
        mixed_groups += mixed
        flat_groups += len(groups) - mixed
        if progress:
            progress(min(begin + config.prompts_per_batch, len(todo)), len(todo))
    return {"dataset": data.ref, "model": model, "model_key": model_key, "round": round_, "prompts": len(rows),
            "prompts_in_dataset": counts["rows"], "prompts_too_long": counts["too_long"], "max_prompt_length": limit,
            "prompt_limit_set_by": "max_prompt_length" if limit == config.max_prompt_length else "context",
            "context_length": context, "skipped_already_sampled": len(rows) - len(todo),
            "prompts_sampled": len(todo), "rollouts_written": written,
            "reward_mean": float(np.mean(rewards)) if rewards else None, "reward_nones": sum(s.nones for s in scorers),
            "grader": grader,
            "zero_variance_groups": flat_groups, "mixed_groups": mixed_groups,
            "seconds": round(time.perf_counter() - start, 2)}
