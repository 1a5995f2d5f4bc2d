"""Held-out evaluation of a model: greedy accuracy and mean reward, and the loss on response tokens.

- `accuracy`: the share of scored rows whose greedy completion gets full credit (a value of at
  least 1) from every reward; with 0/1 rewards such as `math` it is the share answered right.
- `reward`: the mean over scored rows of the rewards' mean value.
  A row is scored when at least one reward returns a value for it (`math` returns None for a
  row without an `answer`); unscored rows are counted, never silently taken as wrong.
- `loss`: the mean negative log-likelihood per response token (EOS included), over every row
  with a response, under the same template and truncation that SFT trains with; token masks
  are ignored, so every model is scored on the same tokens.

Decoding is greedy (temperature 0), so the same model and rows always give the same numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from curate.catalog.versions import DatasetVersion
from curate.errors import BadUsage
from curate.train.data import PROMPT_COLUMNS, iter_rows
from curate.train.reward_contract import RewardFunc

METRICS = ("accuracy", "reward", "loss")
GENERATION_METRICS = ("accuracy", "reward")


@dataclass
class EvalResult:
    metrics: dict[str, float]  # those asked for (accuracy and reward are measured together)
    rows: int
    scored: int  # rows a reward scored (generation metrics)
    unscored: int
    loss_tokens: int  # response tokens in the loss
    seconds: float


def check_metrics(metrics: Sequence[str]) -> list[str]:
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise BadUsage(f"unknown metric {unknown[0] if unknown else '(none)'!r}", hint="metrics: " + ", ".join(METRICS))
    return list(metrics)


def evaluate(
    model: Any,
    data: DatasetVersion | Sequence[dict],
    metrics: Sequence[str] = ("accuracy",),
    reward: str | RewardFunc | Sequence[str | RewardFunc] = "math",
    max_new_tokens: int = 256,
    template: str = "auto",
    max_length: int | None = None,
    dtype: str = "auto",
    device: str = "auto",
    batch_size: int = 32,
) -> EvalResult:
    """Evaluate `model` (a folder, hub id or loaded `LM`) on held-out rows; `max_length` truncates
    prompt + response for the loss as SFT does (default: the model's context)."""
    from curate.lm.loading import LM, load

    start = time.perf_counter()
    wanted = check_metrics(metrics)
    rows = list(iter_rows(data, PROMPT_COLUMNS))
    if not rows:
        raise BadUsage("there are no rows to evaluate on")
    lm = model if isinstance(model, LM) else load(str(model), dtype=dtype, device=device)
    out: dict[str, float] = {}
    scored = unscored = tokens = 0
    if any(m in GENERATION_METRICS for m in wanted):
        accuracy, mean_reward, scored = generation_metrics(lm, rows, reward, max_new_tokens, template, batch_size)
        unscored = len(rows) - scored
        out.update({"accuracy": accuracy, "reward": mean_reward})
    if "loss" in wanted:
        out["loss"], tokens = response_loss(lm, rows, template, max_length or lm.max_length)
    return EvalResult(out, len(rows), scored, unscored, tokens, round(time.perf_counter() - start, 3))


def generation_metrics(lm: Any, rows: list[dict], reward: str | RewardFunc | Sequence[str | RewardFunc],
                       max_new_tokens: int, template: str, batch_size: int) -> tuple[float, float, int]:
    """(accuracy, mean reward, scored rows) of greedy completions."""
    from curate.lm.generation import HFBackend, SamplingParams
    from curate.train.rewards import CheckedReward, get_reward

    specs = [reward] if isinstance(reward, str) or callable(reward) else list(reward)
    if not specs:
        raise BadUsage("accuracy and reward need a reward", hint="e.g. --reward math")
    prompts = [r["prompt"] for r in rows]
    outputs = HFBackend(lm, batch_size=batch_size, template=template).generate(
        prompts, 1, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    completions = [group[0].text for group in outputs]
    columns = {k: [r.get(k) for r in rows] for k in {k for r in rows for k in r} - {"prompt"}}
    checked = [CheckedReward(get_reward(s), name=s) if isinstance(s, str) else CheckedReward(s) for s in specs]
    table = np.array([[math.nan if v is None else v for v in f(prompts=prompts, completions=completions, **columns)]
                      for f in checked], dtype=np.float64)
    has_value = ~np.isnan(table)
    scored_rows = has_value.any(axis=0)
    scored = int(scored_rows.sum())
    if scored == 0:
        return math.nan, math.nan, 0
    full_credit = np.where(has_value, table >= 1.0, True).all(axis=0)
    per_row = np.nanmean(np.where(has_value, table, np.nan)[:, scored_rows], axis=0)
    return float(full_credit[scored_rows].mean()), float(per_row.mean()), scored


def response_loss(lm: Any, rows: list[dict], template: str, max_length: int) -> tuple[float, int]:
    """(mean NLL per response token, tokens) over the rows that have a response."""
    from curate.lm.scoring import token_logprobs
    from curate.lm.templates import encode_pairs

    pairs = [(r["prompt"], r["response"]) for r in rows if isinstance(r.get("response"), str) and r["response"].strip()]
    if not pairs:
        return math.nan, 0
    items = encode_pairs([p for p, _ in pairs], [r for _, r in pairs], lm.tokenizer, template,
                         add_eos=True, max_length=max_length)
    logps = np.concatenate([lp for lp in token_logprobs(lm, items) if len(lp)] or [np.zeros(0)])
    return (float(-logps.mean()) if len(logps) else math.nan), int(len(logps))
