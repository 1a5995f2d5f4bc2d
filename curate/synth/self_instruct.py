"""The `self-instruct` recipe: seed tasks -> new instructions -> instances (input, output) -> rows.

Self-Instruct (Wang, Kordi, Mishra, Liu, Smith, Khashabi, Hajishirzi; ACL 2023,
arXiv 2212.10560), §2, as in its released code:

1. Instruction generation, in rounds. Each request shows 8 instructions of the task pool,
   6 human-written seed tasks and 2 machine-generated ones (once there are some), and asks
   for the next; temperature 0.7, top_p 0.5, stop after instruction 16. New instructions
   pass the paper's filters (length 4..150 words, no words a text model cannot act on,
   no "Write a program", no leading punctuation or non-ASCII) and are kept only when
   their ROUGE-L with every instruction in the pool, seeds included, is at most 0.7.
   Kept ones join the pool at once, so later candidates are compared with them too.
2. Classification identification: "Can the following task be regarded as a classification
   task with finite output labels?", few-shot with seed tasks and their labels.
3. Instance generation, greedy: input-first for generation tasks, output-first (the class
   label, then an input for it) for classification tasks, at most 5 instances a task.
4. Instance filters: duplicates, empty outputs, input equal to output, text ending with a
   colon (unfinished), and tasks whose same input has different outputs.

Every dropped candidate is recorded with its reason. Requests go through the cache with
seeds derived from the run's seed and the round, so a rerun asks for exactly the same
requests and an interrupted run resumes where it stopped. Deviations from the paper: the
instruction stage's max_new_tokens defaults to 256 (the paper: 1024 for up to 7
instructions) and the few-shot examples of stages 2 and 3 come from the seed file
rather than fixed hand-written templates; presence and frequency penalties are not used
(not every backend has them).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from curate.catalog.versions import Lineage, elapsed_since
from curate.errors import BadUsage
from curate.lm.generation import SamplingParams
from curate.lm.identity import derive_seed
from curate.synth.context import SynthContext, SynthResult
from curate.synth.self_instruct_format import (
    SeedTask,
    classification_prompt,
    example_prompt,
    filter_instances,
    instance_prompt,
    instance_stops,
    instruction_prompt,
    instruction_stops,
    parse_classification,
    parse_instances,
    parse_instructions,
    squash,
)
from curate.synth.similarity import RougeIndex
from curate.synth.writer import Drop, SynthRow, commit_rows


@dataclass(frozen=True)
class SelfInstructConfig:
    num_instructions: int = 200  # new instructions to keep
    demos: int = 8  # instructions shown per request
    machine_demos: int = 2  # of which machine-generated, once the pool has some
    round_size: int = 32  # requests per round at most (machine demos are sampled from the pool at its start)
    max_requests: int | None = None  # instruction requests at most (default: 20 per instruction wanted)
    rouge_threshold: float = 0.7
    classify: bool = True
    classification_demos: int = 12
    instance_demos: int = 3
    max_instances: int = 5
    temperature: float = 0.7
    top_p: float = 0.5
    max_new_tokens: int = 256
    instance_max_new_tokens: int = 300
    domain: str | None = None

    def validate(self) -> None:
        if self.num_instructions < 1:
            raise BadUsage(f"--count must be at least 1, not {self.num_instructions}")
        if not 1 <= self.demos or not 0 <= self.machine_demos <= self.demos:
            raise BadUsage(f"--demos {self.demos} and machine demos {self.machine_demos}: need 0 <= machine <= demos")
        if not 0 < self.rouge_threshold <= 1:
            raise BadUsage(f"--rouge-threshold must be in (0, 1], not {self.rouge_threshold}")
        if self.max_instances < 1:
            raise BadUsage(f"--max-instances must be at least 1, not {self.max_instances}")
        if self.round_size < 1 or self.instance_demos < 0:  # Python API settings, no CLI options
            raise BadUsage(f"round_size must be >= 1 and instance_demos >= 0, not {self.round_size} and "
                           f"{self.instance_demos}")


@dataclass
class KeptInstruction:
    text: str
    generated_at: float
    round: int
    most_similar: str | None
    similarity: float
    is_classification: bool | None = None
    meta: dict = field(default_factory=dict)


def _sampling(config: SelfInstructConfig, seed: int) -> dict[str, SamplingParams]:
    return {
        "instructions": SamplingParams(temperature=config.temperature, top_p=config.top_p,
                                       max_new_tokens=config.max_new_tokens, seed=seed,
                                       stop=instruction_stops(config.demos)),
        "classification": SamplingParams(temperature=0.0, max_new_tokens=3, seed=seed, stop=("\n", "Task")),
        "instances": SamplingParams(temperature=0.0, max_new_tokens=config.instance_max_new_tokens, seed=seed,
                                    stop=instance_stops(config.max_instances)),
    }


def check_seeds(seeds: list[SeedTask], config: SelfInstructConfig) -> None:
    """Everything the recipe needs from the seed file, checked before any generation (and before
    a model is loaded): enough tasks for the demonstrations, and instances to show."""
    if len(seeds) < config.demos - config.machine_demos:
        raise BadUsage(f"--demos {config.demos} needs at least {config.demos - config.machine_demos} seed tasks, "
                       f"the seed file has {len(seeds)}", hint="lower --demos or add seed tasks")
    if not any(s.instances for s in seeds):
        raise BadUsage("no seed task has instances, so there is nothing to show for instance generation",
                       hint="give seed tasks with \"instances\": [{\"input\": ..., \"output\": ...}]")


def generate_instructions(ctx: SynthContext, seeds: list[SeedTask], config: SelfInstructConfig,
                          sampling: SamplingParams, drops: list[Drop], stats: dict) -> list[KeptInstruction]:
    seed_texts = [squash(s.instruction) for s in seeds]
    pool = RougeIndex()
    pool.extend(seed_texts)
    kept: list[KeptInstruction] = []
    budget = config.max_requests or 20 * config.num_instructions
    requests = round_no = 0
    while len(kept) < config.num_instructions and requests < budget:
        rng = random.Random(derive_seed(ctx.seed, "self-instruct/round", round_no))
        size = min(config.round_size, budget - requests, config.num_instructions - len(kept))
        prompts = []
        for _ in range(size):
            from_machine = min(config.machine_demos, len(kept))
            shown = rng.sample([k.text for k in kept], from_machine) if from_machine else []
            shown += rng.sample(seed_texts, min(len(seed_texts), config.demos - from_machine))
            rng.shuffle(shown)
            prompts.append(instruction_prompt(shown))
        results = ctx.backend.generate(prompts, 1, sampling)
        requests += size
        for (completion,) in results:
            if len(kept) >= config.num_instructions:
                stats["unused_responses"] = stats.get("unused_responses", 0) + 1
                continue
            for candidate in parse_instructions(completion.text, completion.truncated):
                stats["candidates"] += 1
                if len(kept) >= config.num_instructions:
                    stats["unused_candidates"] = stats.get("unused_candidates", 0) + 1
                    continue
                if candidate.reason:
                    drops.append(Drop.of(candidate.text, None, candidate.reason, candidate.detail))
                    continue
                close = pool.first_above(candidate.text, config.rouge_threshold)
                if close is not None:
                    detail = f"ROUGE-L {close.score:.3f} > {config.rouge_threshold} with: {close.text[:200]}"
                    drops.append(Drop.of(candidate.text, None, "rouge_l_near_duplicate", detail))
                    continue
                nearest = pool.nearest(candidate.text)
                kept.append(KeptInstruction(candidate.text, completion.generated_at, round_no,
                                            nearest.text if nearest else None, nearest.score if nearest else 0.0))
                pool.add(candidate.text)
        round_no += 1
        ctx.progress("instructions", len(kept), config.num_instructions)
    stats.update(instruction_requests=requests, rounds=round_no, instructions_kept=len(kept))
    if len(kept) < config.num_instructions:
        ctx.warn(f"self-instruct kept {len(kept)} of the {config.num_instructions} instructions asked for after "
                 f"{requests} requests (the budget); see the drop reasons, or raise --max-requests")
    return kept


def classify(ctx: SynthContext, seeds: list[SeedTask], kept: list[KeptInstruction], config: SelfInstructConfig,
             sampling: SamplingParams, stats: dict) -> None:
    labelled = [s for s in seeds if s.is_classification is not None]
    positives = [s for s in labelled if s.is_classification]
    if not config.classify or not positives or not kept:
        stats["classification"] = "skipped" if not config.classify else "no classification seed tasks"
        return
    rng = random.Random(derive_seed(ctx.seed, "self-instruct/classification-demos"))
    half = config.classification_demos // 2
    negatives = [s for s in labelled if not s.is_classification]
    demos = rng.sample(positives, min(half, len(positives))) + rng.sample(
        negatives, min(config.classification_demos - min(half, len(positives)), len(negatives)))
    rng.shuffle(demos)
    results = ctx.backend.generate([classification_prompt(demos, k.text) for k in kept], 1, sampling)
    counts = {"yes": 0, "no": 0, "unparsed": 0}
    for item, (completion,) in zip(kept, results):
        item.is_classification = parse_classification(completion.text)
        counts["unparsed" if item.is_classification is None else "yes" if item.is_classification else "no"] += 1
    stats["classification"] = counts
    ctx.progress("classification", len(kept), len(kept))


def _instance_demos(seeds: list[SeedTask], classification: bool, count: int, rng: random.Random) -> list[SeedTask]:
    usable = [s for s in seeds if s.instances]
    same_kind = [s for s in usable if bool(s.is_classification) == classification]
    pool = same_kind or usable
    return rng.sample(pool, min(count, len(pool)))


def generate_rows(ctx: SynthContext, seeds: list[SeedTask], kept: list[KeptInstruction], config: SelfInstructConfig,
                  sampling: dict[str, SamplingParams], drops: list[Drop], stats: dict) -> list[SynthRow]:
    prompts, templates = [], []
    for item in kept:
        rng = random.Random(derive_seed(ctx.seed, "self-instruct/instance-demos", item.text))
        as_classification = bool(item.is_classification)
        demos = _instance_demos(seeds, as_classification, config.instance_demos, rng)
        as_classification = as_classification and any(d.is_classification for d in demos)
        prompts.append(instance_prompt(demos, item.text, as_classification))
        templates.append("self-instruct/instances-output-first" if as_classification
                         else "self-instruct/instances-input-first")
    results = ctx.backend.generate(prompts, 1, sampling["instances"]) if prompts else []
    rows: list[SynthRow] = []
    for item, template, (completion,) in zip(kept, templates, results):
        classification = template.endswith("output-first")
        instances, dropped = filter_instances(parse_instances(completion.text, classification),
                                              completion.truncated, config.max_instances)
        for instance, reason in dropped:
            drops.append(Drop.of(example_prompt(item.text, instance), instance.output, reason,
                                 f"task: {item.text[:200]}"))
        if not instances:
            drops.append(Drop.of(item.text, None, "no_valid_instance",
                                 f"{len(dropped)} parsed instances, none valid"))
            continue
        for number, instance in enumerate(instances):
            meta = {"synth": ctx.provenance.row(template, completion.generated_at),
                    "self_instruct": {"instruction": item.text, "input": instance.input, "instance": number,
                                      "is_classification": item.is_classification, "round": item.round,
                                      "most_similar_instruction": item.most_similar,
                                      "max_rouge_l": round(item.similarity, 4)}}
            rows.append(SynthRow(example_prompt(item.text, instance), instance.output, domain=config.domain,
                                 meta=meta))
    ctx.progress("instances", len(kept), len(kept))
    stats["instances_kept"] = len(rows)
    return rows


def run(ctx: SynthContext, seeds: list[SeedTask], config: SelfInstructConfig, name: str, inputs: list[str],
        license: str | None) -> SynthResult:
    config.validate()
    check_seeds(seeds, config)
    start = time.perf_counter()
    sampling = _sampling(config, ctx.seed)
    ctx.provenance.sampling = sampling
    drops: list[Drop] = []
    stats: dict = {"seed_tasks": len(seeds), "candidates": 0}
    kept = generate_instructions(ctx, seeds, config, sampling["instructions"], drops, stats)
    classify(ctx, seeds, kept, config, sampling["classification"], stats)
    rows = generate_rows(ctx, seeds, kept, config, sampling, drops, stats)
    cache = ctx.backend.stats
    stats.update(prompts_requested=cache.prompts, cache_hits=cache.hits, generated=cache.generated)
    step = Lineage(op="synth", inputs=inputs, strategy="self-instruct",
                   params=ctx.provenance.lineage_params(config, stats=stats),
                   model_id=ctx.provenance.identity.model, model_hash=ctx.provenance.identity.model_hash,
                   seed=ctx.seed, rows_in=stats["candidates"], duration_s=elapsed_since(start))
    version = commit_rows(ctx.ws, name, rows, drops, step, license)
    return SynthResult(version, "self-instruct", version.rows, step.drop_counts, cache.prompts, cache.hits,
                       cache.generated, elapsed_since(start), ctx.provenance.license.warning, stats)
