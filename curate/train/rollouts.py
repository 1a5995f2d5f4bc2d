"""GRPO rollouts: sample G completions per prompt, score them, and write them to the prompt ledger.

An `Episode` (as in GRPO-Zero) is one completion of one prompt with everything the
update needs: token ids, whether it was truncated, its rewards and, later, its
advantage. Completions come from any `curate.lm.generation.GenerationBackend` (the `hf`
backend by default); rewards are called once per batch with TRL's keyword contract.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from curate.catalog.ledger import Rollout
from curate.errors import BadUsage
from curate.lm.generation import GenerationBackend, SamplingParams
from curate.train.losses import combine_rewards
from curate.train.rewards import CheckedReward

HIDDEN_COLUMNS = ("prompt", "prompt_len")


@dataclass
class Episode:
    row: dict  # the prompt's dataset row (id, prompt, answer, tests, ...)
    draw: int  # position of this prompt among the step's draws (makes ledger ids unique)
    sample_idx: int  # which of the group's completions
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    truncated: bool
    rewards: list[float | None] = field(default_factory=list)  # one per reward function
    reward: float = math.nan  # weighted sum; NaN when no function could score it
    outcome: float = math.nan  # the outcome reward (e.g. `math`) that decides success; the sum when none is named
    advantage: float = 0.0
    old_logps: torch.Tensor | None = None  # per completion token, under the policy that sampled it (mu > 1)
    ref_logps: torch.Tensor | None = None  # per completion token, under the frozen reference (beta > 0)

    def __len__(self) -> int:
        return len(self.completion_ids)


Group = list[Episode]


def generate_groups(backend: GenerationBackend, rows: Sequence[dict], n: int, sampling: SamplingParams,
                    first_draw: int = 0, encode: Callable[[Any], list[int]] | None = None,
                    need_token_ids: bool = True) -> list[Group]:
    """n completions for each row's prompt, as one group of Episodes per row.

    `encode(prompt)` supplies prompt token ids when the backend does not return them.
    `need_token_ids=False` accepts text-only completions (a server's, for the ledger alone).
    """
    completions = backend.generate([row["prompt"] for row in rows], n, sampling)
    groups = []
    for offset, (row, samples) in enumerate(zip(rows, completions)):
        if len(samples) != n:
            raise RuntimeError(f"backend {getattr(backend, 'name', backend)} returned {len(samples)} completions "
                               f"for a prompt, {n} were asked for")
        prompt_ids = list(samples[0].prompt_ids) if samples and samples[0].prompt_ids else None
        if prompt_ids is None and encode is not None:
            prompt_ids = encode(row["prompt"])
        group = []
        for j, c in enumerate(samples):
            if need_token_ids and c.text and not c.token_ids:
                raise BadUsage(f"backend {getattr(backend, 'name', backend)} returns text without token ids, "
                               "which the policy gradient needs", hint="use the hf backend (or vllm) for training")
            group.append(Episode(row, first_draw + offset, j, list(c.prompt_ids) or list(prompt_ids or []),
                                 list(c.token_ids), c.text, c.truncated))
        groups.append(group)
    return groups


def score_groups(groups: Sequence[Group], rewards: Sequence[CheckedReward], weights: Sequence[float],
                 outcome: int | None = None) -> None:
    """Call every reward function once over all episodes and fill in `rewards`, `reward` and `outcome`
    (the value of reward number `outcome`, or the weighted sum when it is None)."""
    episodes = [e for group in groups for e in group]
    if not episodes:
        return
    prompts = [e.row["prompt"] for e in episodes]
    completions: list[Any] = [e.text if isinstance(e.row["prompt"], str) else [{"role": "assistant", "content": e.text}]
                              for e in episodes]
    keys = sorted({k for e in episodes for k in e.row if k not in HIDDEN_COLUMNS})
    columns = {k: [e.row.get(k) for e in episodes] for k in keys}
    columns["completion_ids"] = [e.completion_ids for e in episodes]
    per_func = [func(prompts, completions, **columns) for func in rewards]
    table = torch.tensor([[math.nan if v is None else v for v in values] for values in per_func],
                         dtype=torch.float32).T
    combined = combine_rewards(table, torch.tensor(list(weights), dtype=torch.float32))
    for i, episode in enumerate(episodes):
        episode.rewards = [values[i] for values in per_func]
        episode.reward = float(combined[i])
        value = episode.rewards[outcome] if outcome is not None else episode.reward
        episode.outcome = math.nan if value is None else float(value)


def reward_matrix(groups: Sequence[Group]) -> np.ndarray:
    """[groups, G] combined rewards (NaN where unscored)."""
    return np.array([[e.reward for e in group] for group in groups], dtype=np.float64).reshape(len(groups), -1)


def outcome_matrix(groups: Sequence[Group]) -> np.ndarray:
    """[groups, G] outcome rewards (NaN where unscored)."""
    return np.array([[e.outcome for e in group] for group in groups], dtype=np.float64).reshape(len(groups), -1)


def success_matrix(groups: Sequence[Group], threshold: float) -> np.ndarray:
    """[groups, G]: 1.0 where the outcome passed `threshold`, 0.0 where not, NaN where unscored."""
    outcomes = outcome_matrix(groups)
    return np.where(np.isnan(outcomes), np.nan, (outcomes >= threshold).astype(np.float64))


def ledger_rollouts(groups: Sequence[Group], model_key: str, run: str, step: int, n: int,
                    dataset: str | None, threshold: float | None = None, grader: str | None = None) -> list[Rollout]:
    """The ledger's view of the episodes; ids are (run, step, prompt, draw * n + sample), so reruns dedupe.
    With `threshold`, each carries its success flag (outcome >= threshold) for the ledger's counts."""
    def success(e: Episode) -> bool | None:
        return None if threshold is None or math.isnan(e.outcome) else bool(e.outcome >= threshold)

    return [Rollout(prompt_id=str(e.row["id"]), model_key=model_key, completion=e.text,
                    reward=None if math.isnan(e.reward) else e.reward,
                    length=len(e.completion_ids) if e.completion_ids or not e.text else None,  # None: not known
                    truncated=e.truncated, run=run, step=step, sample_idx=e.draw * n + e.sample_idx, dataset=dataset,
                    success=success(e), grader=grader)
            for group in groups for e in group]
