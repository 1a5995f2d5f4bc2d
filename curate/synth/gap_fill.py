"""The `gap-fill` recipe: new examples where a dataset is thin, through the selectors it went through.

1. Find the gaps (`curate.synth.gaps`): rows per domain, or per pass-rate band of the
   prompt ledger, against target shares; allocate the n new examples to the deficits.
2. Generate, per group, prompts that imitate it: each request shows `demos` examples of the
   group (sampled with the seed) and asks for one more of the same kind and difficulty
   ("few-shot generation", as in Self-Instruct's instruction step and Unnatural
   Instructions). Candidates are filtered like Self-Instruct's: not cut by the token limit,
   at least 4 words, and ROUGE-L at most 0.7 against the group's examples and the
   candidates already kept. A group with no example is prompted by its name alone; requests
   that come out identical (a group with few examples) are sampled as n samples of one prompt.
   Responses are generated too when the source has them (SFT data), so that response-based
   selectors can score the candidates.
3. Commit the candidates as `NAME-candidates`, then run them through the same selectors:
   the `select` steps in the source's lineage, in order, each keeping the fraction it kept
   there (or `--strategy` given explicitly; `none` skips this). The selection's output is NAME.

Each row's meta records the group, its count, target share and deficit, and the ids of the
examples shown, besides the generator's provenance.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import polars as pl

from curate.catalog.versions import DatasetVersion, Lineage, elapsed_since, lineage_of
from curate.errors import BadUsage
from curate.lm.generation import SamplingParams
from curate.lm.identity import derive_seed
from curate.synth.context import SynthContext, SynthResult
from curate.synth.gaps import DEFAULT_BANDS, GapPlan, Group, group_examples, plan
from curate.synth.similarity import RougeIndex
from curate.synth.writer import Drop, SynthRow, commit_rows

DEMO_CHARS = 1000
MAX_REFERENCE = 5000  # group examples a candidate is compared with (a seeded sample past this)


@dataclass(frozen=True)
class GapFillConfig:
    n: int = 100  # new examples to allocate
    by: str = "domain"  # domain | difficulty
    targets: tuple[tuple[str, float], ...] = ()  # (group, weight); default: equal shares
    bands: tuple[float, ...] = DEFAULT_BANDS
    model_key: str | None = None  # ledger key for --by difficulty (default: the key with most stats)
    demos: int = 4
    responses: bool | None = None  # None: when most source rows have a response
    rouge_threshold: float = 0.7
    oversample: float = 1.5  # requests per missing example in a round
    max_requests: int | None = None  # default 10 per example
    temperature: float = 0.9
    top_p: float = 0.95
    max_new_tokens: int = 256
    response_max_new_tokens: int = 512
    select: str | None = None  # None: the source's own selection steps; "none": skip
    select_model: str | None = None
    select_budget: str | None = None

    @property
    def skips_selection(self) -> bool:
        return bool(self.select and self.select.strip().lower() == "none")

    def validate(self) -> None:
        if self.n < 1:
            raise BadUsage(f"--count must be at least 1, not {self.n}")
        if self.demos < 0 or self.oversample < 1:
            raise BadUsage("--demos must be >= 0 and the oversampling factor >= 1")


def _text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] or "" for m in prompt if m.get("role") == "user"]
    return users[-1] if users else (prompt[-1]["content"] or "" if prompt else "")


def request_prompt(group: Group, by: str, demos: list[str]) -> str:
    about = (f"in the domain {group.name!r}" if by == "domain"
             else f"of the same difficulty (pass-rate band {group.name})")
    if not demos:
        return (f"Write one new, self-contained example task {about}. Give only the task.\n\n"
                f"Example 1:\n")
    shown = "".join(f"Example {i}:\n{d.strip()[:DEMO_CHARS]}\n\n" for i, d in enumerate(demos, 1))
    return (f"Below are {len(demos)} example tasks {about}. Write one new task of the same kind and difficulty, "
            f"with different content. Give only the task.\n\n{shown}Example {len(demos) + 1}:\n")


def parse_candidate(text: str) -> str:
    cleaned = text.strip()
    if cleaned.lower().startswith("example") and ":" in cleaned.split("\n", 1)[0]:
        cleaned = cleaned.split(":", 1)[1].strip()
    return cleaned


class GapFill:
    def __init__(self, ctx: SynthContext, source: DatasetVersion, config: GapFillConfig):
        self.ctx, self.source, self.config = ctx, source, config
        self.sampling = SamplingParams(temperature=config.temperature, top_p=config.top_p,
                                       max_new_tokens=config.max_new_tokens, seed=ctx.seed,
                                       stop=tuple(f"Example {k}:" for k in range(2, config.demos + 3)))
        self.response_sampling = SamplingParams(temperature=0.7, top_p=0.95,
                                                max_new_tokens=config.response_max_new_tokens, seed=ctx.seed)
        self.drops: list[Drop] = []
        self.stats: dict[str, Any] = {"candidates": 0, "requests": 0}

    def run(self, name: str, license: str | None) -> SynthResult:
        start = time.perf_counter()
        config = self.config
        gaps = plan(self.ctx.ws, self.source, config.by, config.n, dict(config.targets), config.bands, config.model_key)
        responses = config.responses
        if responses is None:
            with_response = self.source.scan().select(pl.col("response").is_not_null().mean()).collect().item()
            responses = bool(with_response and with_response > 0.5)
        self.ctx.provenance.sampling = {"prompts": self.sampling, **({"responses": self.response_sampling}
                                                                     if responses else {})}
        rows: list[SynthRow] = []
        for group in gaps.groups:
            if group.allocated:
                rows += self._fill(gaps, group, responses)
        cache = self.ctx.backend.stats
        self.stats.update(prompts_requested=cache.prompts, cache_hits=cache.hits, generated=cache.generated)
        step = Lineage(op="synth", inputs=[self.source.ref], strategy="gap-fill",
                       params=self.ctx.provenance.lineage_params(config, plan=gaps.as_dict(), stats=self.stats,
                                                                 responses=responses),
                       model_id=self.ctx.provenance.identity.model,
                       model_hash=self.ctx.provenance.identity.model_hash, seed=self.ctx.seed,
                       rows_in=self.stats["candidates"], duration_s=elapsed_since(start))
        version = commit_rows(self.ctx.ws, name, rows, self.drops, step, license)
        return SynthResult(version, "gap-fill", version.rows, step.drop_counts, cache.prompts, cache.hits,
                           cache.generated, elapsed_since(start), self.ctx.provenance.license.warning,
                           {**self.stats, "plan": gaps.as_dict()})

    def _reference(self, gaps: GapPlan, group: Group) -> tuple[list[tuple[str, str]], RougeIndex]:
        frame = group_examples(self.ctx.ws, self.source, gaps, group).select("id", "prompt").collect()
        if frame.height > MAX_REFERENCE:
            frame = frame.sample(MAX_REFERENCE, seed=derive_seed(self.ctx.seed, "gap-fill/reference", group.name))
        examples = [(i, _text(p)) for i, p in zip(frame["id"].to_list(), frame["prompt"].to_list())]
        index = RougeIndex()
        index.extend(text for _, text in examples)
        return examples, index

    def _fill(self, gaps: GapPlan, group: Group, responses: bool) -> list[SynthRow]:
        config = self.config
        examples, index = self._reference(gaps, group)
        kept: list[tuple[str, list[str], float]] = []
        budget = config.max_requests or 10 * group.allocated
        used = round_no = 0
        while len(kept) < group.allocated and used < budget:
            rng = random.Random(derive_seed(self.ctx.seed, "gap-fill/round", group.name, round_no))
            size = min(budget - used, max(1, round((group.allocated - len(kept)) * config.oversample)))
            prompts, shown = [], []
            for _ in range(size):
                demos = rng.sample(examples, min(config.demos, len(examples)))
                shown.append([i for i, _ in demos])
                prompts.append(request_prompt(group, gaps.by, [t for _, t in demos]))
            used += size
            for ids, completion in zip(shown, self._sample(prompts)):
                if len(kept) >= group.allocated:
                    break
                if completion is None:  # greedy decoding repeats an identical request: nothing new to read
                    continue
                self.stats["candidates"] += 1
                text = parse_candidate(completion.text)
                reason = self._reject(text, completion.truncated, index)
                if reason:
                    self.drops.append(Drop.of(text, None, reason[0], f"group {group.name}: {reason[1]}"))
                    continue
                kept.append((text, ids, completion.generated_at))
                index.add(text)
            round_no += 1
            self.ctx.progress(f"gap-fill {group.name}", len(kept), group.allocated)
        self.stats["requests"] += used
        if len(kept) < group.allocated:
            self.ctx.warn(f"gap-fill: group {group.name} got {len(kept)} of {group.allocated} new examples after "
                          f"{used} requests; see the drop reasons or raise --max-requests")
        answers = self.ctx.backend.generate([t for t, _, _ in kept], 1, self.response_sampling) if responses and kept \
            else [[None]] * len(kept)
        rows = []
        for (text, ids, generated_at), (answer,) in zip(kept, answers):
            if answer is not None and (answer.truncated or not answer.text.strip()):
                self.drops.append(Drop.of(text, answer.text, "response_truncated" if answer.truncated
                                          else "empty_response", f"group {group.name}"))
                continue
            meta = {"synth": self.ctx.provenance.row(f"gap-fill/{gaps.by}", generated_at),
                    "gap_fill": {"by": gaps.by, "group": group.name, "group_rows": group.rows,
                                 "target_share": round(group.target_share, 6), "deficit": round(group.deficit, 3),
                                 "demo_ids": ids, "model_key": gaps.model_key}}
            rows.append(SynthRow(text, answer.text if answer is not None else None,
                                 domain=group.name if gaps.by == "domain" else None, meta=meta))
        return rows

    def _sample(self, prompts: list[str]) -> list[Any]:
        """One completion per request; identical requests (a group with few examples) are sampled together as
        n samples of one prompt, so they differ instead of repeating one seeded answer."""
        unique = list(dict.fromkeys(prompts))
        n = max(Counter(prompts).values()) if self.sampling.temperature > 0 else 1
        samples = {p: iter(group) for p, group in zip(unique, self.ctx.backend.generate(unique, n, self.sampling))}
        return [next(samples[p], None) for p in prompts]

    def _reject(self, text: str, truncated: bool, index: RougeIndex) -> tuple[str, str] | None:
        if truncated:
            return "truncated", "the token limit cut the task"
        if len(text.split()) < 4:
            return "too_short", f"{len(text.split())} words (at least 4)"
        close = index.first_above(text, self.config.rouge_threshold)
        if close is not None:
            return ("rouge_l_near_duplicate",
                    f"ROUGE-L {close.score:.3f} > {self.config.rouge_threshold} with: {close.text[:200]}")
        return None


def source_selection(ws, source: DatasetVersion) -> list[tuple[str, dict[str, Any], float | None, str | None]]:
    """(strategy, params, kept fraction, model) of each `select` step in the source's lineage."""
    steps = []
    for step in lineage_of(ws, source):
        if step["op"] != "select" or not step["strategy"]:
            continue
        params = {k: v for k, v in step["params"].items() if k not in ("budget", "template")}
        fraction = step["rows_out"] / step["rows_in"] if step["params"].get("budget") and step["rows_in"] else None
        model = step["model_id"]
        if model and model.startswith("proxy"):
            model = "proxy"
        steps.append((step["strategy"], params, fraction, model))
    return steps


def select_candidates(ws, candidates: DatasetVersion, source: DatasetVersion, config: GapFillConfig, name: str,
                      seed: int, template: str = "auto") -> tuple[Any, list[str]]:
    """Run the candidates through the source's selectors (or `config.select`); returns the report and strategies."""
    from curate.selectors.pipeline import run_select

    if config.skips_selection:
        return None, []
    params: dict[str, Any] = {}
    if config.select:
        strategies = [s.strip() for s in config.select.split(",") if s.strip()]
        model = config.select_model or "proxy"
    else:
        steps = source_selection(ws, source)
        strategies = [s for s, _, _, _ in steps] or ["dedup"]
        model = config.select_model or next((m for _, _, _, m in steps if m), "proxy")
        for position, (_, step_params, fraction, _) in enumerate(steps, 1):
            for key, value in step_params.items():
                params[f"{position}.{key}"] = value
            if fraction is not None:
                params[f"{position}.budget"] = max(1, round(fraction * candidates.rows))
    report = run_select(ws, candidates.ref, strategies, budget=config.select_budget, model=model, out=name,
                        params=params, seed=seed, template=template)
    return report, strategies


def run(ctx: SynthContext, source: DatasetVersion, config: GapFillConfig, name: str,
        license: str | None) -> tuple[SynthResult, Any]:
    """Generate into NAME-candidates, then select into NAME (or generate into NAME with select none)."""
    config.validate()
    skip = config.skips_selection
    result = GapFill(ctx, source, config).run(name if skip else f"{name}-candidates", license)
    if skip:
        return result, None
    report, strategies = select_candidates(ctx.ws, result.version, source, config, name, ctx.seed)
    result.stats["selection"] = {"strategies": strategies, "candidates": result.version.ref,
                                 "output": report.version.ref, "rows": report.version.rows}
    return result, report
