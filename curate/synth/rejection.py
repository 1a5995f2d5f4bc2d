"""The `rejection` recipe: rejection-sampling fine-tuning data from a verifier.

RFT (Yuan, Yuan, Li, Dong, Lu, Tan, Zhou, Zhou; "Scaling Relationship on Learning
Mathematical Reasoning with Large Language Models", arXiv 2308.01825) samples k reasoning
paths per training question at temperature 0.7, keeps those whose final answer is
correct, and deduplicates them by their list of equations, so each kept path computes
differently. STaR (Zelikman, Wu, Mu, Goodman; NeurIPS 2022, arXiv 2203.14465) keeps the
correct rationales the same way and adds "rationalization": for a question the model got
wrong, it generates again with the correct answer given as a hint, and keeps a correct
rationale as if it had been written without the hint.

Here the verifier is any reward with TRL's contract (`curate.train.rewards`, e.g. `math`):
a sample is accepted when its reward is at least `accept_threshold`. For every prompt the
recipe records:
- in the prompt ledger (`record_rollouts`): every sample as a rollout of the generating
  model (run = this synth run, step 0, sample index), so `prompt_stats` holds attempts,
  successes (= accepted, with the same threshold) and the pass-rate posterior;
- in the output: each kept row's meta has the prompt's accepted/attempted counts, and a
  prompt with no accepted sample is a `drops` row ("0/k accepted"); the lineage holds the
  totals.
Rationalized samples (with the hint) are not the model's own attempts: they are not
written to the ledger, and their rows say so in meta.

Prompts are processed in chunks (bounded memory); the ledger write is idempotent and the
generations are cached, so an interrupted run resumes without new generations or
double-counted rollouts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xxhash

from curate.catalog.ledger import Rollout, ledger_key, record_rollouts
from curate.catalog.versions import DatasetVersion, Lineage, elapsed_since
from curate.errors import BadUsage
from curate.lm.generation import SamplingParams
from curate.synth.context import SynthContext, SynthResult
from curate.synth.writer import Drop, SynthRow, row_sink

COLUMNS = ("id", "prompt", "answer", "tests", "domain", "meta")  # meta: e.g. HumanEval's entry_point
_OPERAND = r"-?[\d.,]+"
_OPERATOR = r"\s*[-+*/x×÷]\s*"
# GSM8K's calculator annotations <<48/2=24>>, else written equations such as "48 / 2 = 24"
EQUATION = re.compile(rf"<<([^>]*)>>|({_OPERAND}{_OPERATOR}{_OPERAND}(?:{_OPERATOR}{_OPERAND})*\s*=\s*{_OPERAND})")


@dataclass(frozen=True)
class RejectionConfig:
    k: int = 8  # samples per prompt (--num-generations)
    reward: str | tuple[str, ...] = "math"  # a built-in reward or module:function; several are summed
    accept_threshold: float = 1.0  # accepted when reward >= this
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 256
    limit: int | None = None  # prompts to use (a seeded random sample), None: all
    dedup: str = "equations"  # equations (RFT), text (normalised), or exact (identical text: a version never
    # holds one row twice)
    max_per_prompt: int | None = None  # kept samples per prompt at most
    rationalize: bool = False  # STaR rationalization for prompts with no accepted sample
    hint_format: str = "{prompt}\n(Hint: the answer is {answer}.)"
    prompt_format: str = "{prompt}"  # how a text prompt is shown to the model
    chunk: int = 256  # prompts per chunk
    model_key: str | None = None  # ledger key (default: the generator's hash)

    @property
    def rewards(self) -> list[str]:
        return [self.reward] if isinstance(self.reward, str) else list(self.reward)

    def verifier(self) -> Any:
        """The reward a sample must reach `accept_threshold` with: the one reward, or the sum of several."""
        from curate.train.rewards import get_reward, weighted_reward

        return get_reward(self.reward) if isinstance(self.reward, str) else weighted_reward(self.rewards)

    def validate(self) -> None:
        if self.k < 1:
            raise BadUsage(f"--num-generations must be at least 1, not {self.k}")
        if not self.rewards:
            raise BadUsage("rejection sampling needs a reward", hint="e.g. --reward math")
        if self.dedup not in ("equations", "text", "exact"):
            raise BadUsage(f"--dedup {self.dedup!r}: use equations, text or exact")
        if self.temperature <= 0 and self.k > 1:
            raise BadUsage(f"--num-generations {self.k} samples at temperature 0 are identical",
                           hint="raise --temperature or use --num-generations 1")
        if "{prompt}" not in self.prompt_format:
            raise BadUsage("--prompt-format must contain {prompt}", hint="e.g. \"Question: {prompt}\\nAnswer:\"")
        if self.limit is not None and self.limit < 1:
            raise BadUsage(f"--count must be at least 1, not {self.limit}")


@dataclass
class PromptTally:
    attempted: int = 0
    accepted: int = 0
    kept: int = 0
    scored: int = 0  # samples the verifier could score (not None)
    rationalized: int = 0
    extra: dict = field(default_factory=dict)


def path_signature(text: str, mode: str) -> str:
    """What makes two accepted solutions the same for RFT's dedup."""
    if mode == "exact":
        return "exact:" + text
    if mode == "equations":
        equations = [re.sub(r"\s+", "", a or b).rstrip(".,") for a, b in EQUATION.findall(text)]
        if equations:
            return "eq:" + "|".join(equations)
    return "text:" + " ".join(text.lower().split())


def model_key(ctx: SynthContext, config: RejectionConfig) -> str:
    """The ledger key: the generator's (or --model-key) with the verifier and the accept threshold."""
    identity = ctx.provenance.identity
    policy = config.model_key or identity.model_hash or xxhash.xxh3_128_hexdigest(
        f"{identity.backend}:{identity.model}@{identity.revision}".encode())
    return ledger_key(policy, [(r, 1.0) for r in config.rewards], config.accept_threshold)


def _show(prompt: Any, config: RejectionConfig) -> Any:
    return config.prompt_format.replace("{prompt}", prompt) if isinstance(prompt, str) else prompt


def _hinted(prompt: Any, answer: str, config: RejectionConfig) -> Any:
    if isinstance(prompt, str):
        return config.hint_format.replace("{prompt}", _show(prompt, config)).replace("{answer}", answer)
    messages = [dict(m) for m in prompt]
    last = messages[-1]
    last["content"] = config.hint_format.replace("{prompt}", last["content"] or "").replace("{answer}", answer)
    return messages


def _completions_for(prompt: Any, texts: list[str]) -> list[Any]:
    """TRL's completion format: text for text prompts, an assistant message list for chat prompts."""
    if isinstance(prompt, str):
        return texts
    return [[{"role": "assistant", "content": t}] for t in texts]


def iter_chunks(source: DatasetVersion, limit: int | None, seed: int, chunk: int) -> Iterator[list[dict]]:
    """The source's rows (all, or a seeded random sample of `limit`) in order, `chunk` at a time, streamed."""
    keep = None
    if limit is not None and limit < source.rows:
        keep = np.sort(np.random.default_rng(seed).choice(source.rows, size=limit, replace=False))
    buffer: list[dict] = []
    offset = 0
    for batch in source.iter_batches(batch_size=max(chunk, 1024), columns=list(COLUMNS)):
        height = batch.height
        if keep is not None:
            lo, hi = np.searchsorted(keep, [offset, offset + height])
            batch = batch[(keep[lo:hi] - offset).tolist()] if hi > lo else batch.head(0)
        offset += height
        buffer.extend(batch.to_dicts())
        while len(buffer) >= chunk:
            yield buffer[:chunk]
            buffer = buffer[chunk:]
    if buffer:
        yield buffer


class Rejection:
    """One run of the recipe over a source dataset."""

    def __init__(self, ctx: SynthContext, source: DatasetVersion, config: RejectionConfig, reward: Any):
        from curate.train.rewards import CheckedReward

        self.ctx, self.source, self.config = ctx, source, config
        self.reward = CheckedReward(reward, name="+".join(config.rewards))
        self.key = model_key(ctx, config)
        self.sampling = SamplingParams(temperature=config.temperature, top_p=config.top_p,
                                       max_new_tokens=config.max_new_tokens, seed=ctx.seed)
        self.rows: list[SynthRow] = []
        self.drops: list[Drop] = []
        self.totals = {"prompts": 0, "attempted": 0, "accepted": 0, "kept": 0, "unscored": 0,
                       "prompts_with_accepted": 0, "rationalized_prompts": 0, "rationalized_kept": 0,
                       "ledger_new_rollouts": 0}

    def run(self, name: str, license: str | None) -> SynthResult:
        start = time.perf_counter()
        self.ctx.provenance.sampling = {"samples": self.sampling}
        total = min(self.source.rows, self.config.limit or self.source.rows)
        with row_sink(self.ctx.ws, self.source.prompt_type) as sink:
            for rows in iter_chunks(self.source, self.config.limit, self.ctx.seed, self.config.chunk):
                self._chunk(rows)
                sink.add(self.rows, self.drops)  # to shards now: memory holds one chunk
                self.rows, self.drops = [], []
                self.ctx.progress("rejection sampling", self.totals["prompts"], total)
            cache = self.ctx.backend.stats
            attempted, scored = self.totals["attempted"], self.totals["attempted"] - self.totals["unscored"]
            self.totals.update(pass_rate=round(self.totals["accepted"] / max(1, scored), 6), model_key=self.key,
                               reward_nones=self.reward.nones, prompts_requested=cache.prompts,
                               cache_hits=cache.hits, generated=cache.generated)
            step = Lineage(op="synth", inputs=[self.source.ref], strategy="rejection",
                           params=self.ctx.provenance.lineage_params(self.config, totals=self.totals),
                           model_id=self.ctx.provenance.identity.model,
                           model_hash=self.ctx.provenance.identity.model_hash, seed=self.ctx.seed, rows_in=attempted,
                           duration_s=elapsed_since(start))
            if sink.rows == 0:
                self.ctx.warn(f"no sample was accepted ({attempted:,} attempted on {self.totals['prompts']:,} "
                              "prompts): the version has no rows; its lineage, drops and the prompt ledger record "
                              "the attempts")
            version = sink.commit(self.ctx.ws, name, step, license, allow_empty=True)
        return SynthResult(version, "rejection", version.rows, step.drop_counts, cache.prompts, cache.hits,
                           cache.generated, elapsed_since(start), self.ctx.provenance.license.warning, self.totals)

    def _chunk(self, rows: list[dict]) -> None:
        k = self.config.k
        results = self.ctx.backend.generate([_show(r["prompt"], self.config) for r in rows], k, self.sampling)
        rollouts: list[Rollout] = []
        failed: list[dict] = []
        for row, samples, scores in zip(rows, results, self._score(rows, results)):
            tally = PromptTally(attempted=len(samples))
            for index, (sample, reward) in enumerate(zip(samples, scores)):
                rollouts.append(Rollout(prompt_id=str(row["id"]), model_key=self.key, completion=sample.text,
                                        reward=reward, length=len(sample.token_ids), truncated=sample.truncated,
                                        run=self.ctx.provenance.run, step=0, sample_idx=index,
                                        dataset=self.source.ref, grader=self.reward.grader))
            self._keep(row, samples, scores, tally, rationalized=False)
            self.totals["prompts"] += 1
            if tally.accepted == 0 and self.config.rationalize and row["answer"]:
                failed.append(row)
        self.totals["ledger_new_rollouts"] += record_rollouts(self.ctx.ws, rollouts,
                                                              success_threshold=self.config.accept_threshold)
        if failed:
            self._rationalize(failed)

    def _score(self, rows: list[dict], results: list[list]) -> list[list]:
        """The verifier's scores of every row's samples (one call for all of them), one list per row."""
        prompts, completions = [], []
        columns = {"answer": [], "tests": [], "domain": [], "meta": [], "completion_ids": []}
        for row, samples in zip(rows, results):
            prompts += [row["prompt"]] * len(samples)
            completions += _completions_for(row["prompt"], [c.text for c in samples])
            for column in ("answer", "tests", "domain", "meta"):
                columns[column] += [row.get(column)] * len(samples)
            columns["completion_ids"] += [list(c.token_ids) for c in samples]
        rewards = self.reward(prompts, completions, **columns) if completions else []
        scores, position = [], 0
        for samples in results:
            scores.append(rewards[position:position + len(samples)])
            position += len(samples)
        return scores

    def _keep(self, row: dict, samples: list, scores: list, tally: PromptTally, rationalized: bool) -> None:
        config = self.config
        seen: set[str] = set()
        accepted = []
        for index, (sample, reward) in enumerate(zip(samples, scores)):
            if reward is None:
                if not rationalized:
                    self.totals["unscored"] += 1
                continue
            tally.scored += 1
            if reward >= config.accept_threshold:
                accepted.append((index, sample, reward))
        tally.accepted = len(accepted)
        if not rationalized:
            self.totals["attempted"] += tally.attempted
            self.totals["accepted"] += tally.accepted
            self.totals["prompts_with_accepted"] += int(tally.accepted > 0)
        kept = []
        for index, sample, reward in accepted:
            signature = path_signature(sample.text, config.dedup)
            if signature in seen:
                self.drops.append(Drop.of(row["prompt"], sample.text, "duplicate_path",
                                          f"prompt {row['id']}: sample {index} repeats an accepted solution"))
                continue
            if config.max_per_prompt is not None and len(kept) >= config.max_per_prompt:
                self.drops.append(Drop.of(row["prompt"], sample.text, "beyond_max_per_prompt",
                                          f"prompt {row['id']}: sample {index}"))
                continue
            seen.add(signature)
            kept.append((index, sample, reward))
        tally.kept = len(kept)
        if not accepted and not rationalized:
            self.drops.append(Drop(str(row["id"]), "no_accepted_sample",
                                   f"0/{tally.attempted} accepted ({tally.scored} scored)"))
        for index, sample, reward in kept:
            record = {"source_id": row["id"], "source": self.source.ref, "accepted": tally.accepted,
                      "attempted": tally.attempted, "kept": tally.kept, "sample": index, "reward": reward,
                      "rationalized": rationalized, "model_key": self.key, "verifier": self.reward.name}
            meta = {"synth": self.ctx.provenance.row("rejection/hinted" if rationalized else "rejection/samples",
                                                     sample.generated_at), "rejection": record}
            self.rows.append(SynthRow(row["prompt"], sample.text, answer=row["answer"], tests=row["tests"],
                                      domain=row["domain"], meta=meta))
        self.totals["kept"] += tally.kept
        if rationalized:
            self.totals["rationalized_kept"] += tally.kept

    def _rationalize(self, rows: list[dict]) -> None:
        """STaR: sample again with the answer as a hint; keep correct rationales under the original prompt."""
        self.ctx.provenance.sampling["rationalization"] = self.sampling
        hinted = [_hinted(r["prompt"], str(r["answer"]), self.config) for r in rows]
        results = self.ctx.backend.generate(hinted, self.config.k, self.sampling)
        for row, samples, scores in zip(rows, results, self._score(rows, results)):
            tally = PromptTally(attempted=len(samples))
            self._keep(row, samples, scores, tally, rationalized=True)
            self.totals["rationalized_prompts"] += 1


def run(ctx: SynthContext, source: DatasetVersion, config: RejectionConfig, name: str, license: str | None,
        reward: Any = None) -> SynthResult:
    config.validate()
    return Rejection(ctx, source, config, reward if reward is not None else config.verifier()).run(name, license)
