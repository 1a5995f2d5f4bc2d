"""The built-in demo: a synthetic task pool that needs no network and no downloads.

The pool is arithmetic word problems over five domains and three difficulty levels,
in GSM8K's layout (question, step-by-step answer ending in `#### N`). Some rows are
planted problems a curation tool should catch: exact duplicates, near-duplicates (the
question with its case, spacing or punctuation changed) and corrupted responses (a wrong
final answer, or scrambled steps). `meta.planted` marks them so the demo can show what
each step found. The second half of the demo (`curate.demo_curation`) selects a curated
subset, trains on it and on a random subset of the same size, and compares them.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curate.catalog.ingest import IngestOptions, IngestReport, ingest
from curate.catalog.workspace import Workspace
from curate.lm.loading import load
from curate.lm.scoring import token_logprobs
from curate.lm.templates import encode_pairs
from curate.train.proxy import ProxyConfig, ensure_proxy

DOMAINS = {
    "shopping": ("apples", "buys", "sells"),
    "cooking": ("cookies", "bakes", "eats"),
    "garden": ("flowers", "plants", "picks"),
    "sports": ("points", "scores", "loses"),
    "library": ("books", "borrows", "returns"),
}
NAMES = ("Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena")
LIMITS = {1: 20, 2: 100, 3: 1000}


def _problem(rng: random.Random, domain: str, difficulty: int) -> tuple[str, list[str], int]:
    thing, gain, loss = DOMAINS[domain]
    name = rng.choice(NAMES)
    limit = LIMITS[difficulty]
    value = rng.randint(2, limit)
    sentences = [f"{name} has {value} {thing}."]
    steps = []
    for _ in range(difficulty):
        op = rng.choice(("add", "sub", "mul") if value < limit else ("add", "sub"))
        if op == "add":
            b = rng.randint(1, limit)
            sentences.append(f"Then {name} {gain} {b} more {thing}.")
            steps.append(f"{value} + {b} = {value + b}")
            value += b
        elif op == "sub" and value > 1:
            b = rng.randint(1, value - 1)
            sentences.append(f"Then {name} {loss} {b} {thing}.")
            steps.append(f"{value} - {b} = {value - b}")
            value -= b
        else:
            b = rng.randint(2, 4)
            sentences.append(f"Then the number of {thing} becomes {b} times as many.")
            steps.append(f"{value} * {b} = {value * b}")
            value *= b
    sentences.append(f"How many {thing} does {name} have now?")
    return " ".join(sentences), steps, value


def _corrupt(rng: random.Random, steps: list[str], value: int) -> str:
    if rng.random() < 0.5:
        wrong = value + rng.choice([-1, 1]) * rng.randint(1, max(2, value // 3))
        return "\n".join(steps) + f"\n#### {wrong}"
    words = " ".join(steps).split()
    rng.shuffle(words)
    return " ".join(words) + f"\n#### {rng.randint(0, 999)}"


def _near_copy(rng: random.Random, question: str) -> str:
    """The same question after a surface edit: letter case, whitespace or punctuation."""
    edit = rng.choice(("lower", "spaces", "punct"))
    if edit == "lower":
        return question.lower()
    if edit == "spaces":
        return question.replace(". ", ".  ", 1).replace(" ", "  ", 1) + " "
    return question.replace(".", "", 1).replace("?", " ?")


def make_pool(rows: int, seed: int = 0, duplicate_rate: float = 0.05, corrupt_rate: float = 0.1,
              near_duplicate_rate: float = 0.03) -> list[dict]:
    """Rows in GSM8K layout plus domain, difficulty and what was planted."""
    rng = random.Random(seed)
    pool: list[dict] = []
    unique = round(rows / (1 + duplicate_rate + near_duplicate_rate))
    for _ in range(unique):
        domain = rng.choice(sorted(DOMAINS))
        difficulty = rng.choice((1, 2, 3))
        question, steps, value = _problem(rng, domain, difficulty)
        corrupt = rng.random() < corrupt_rate
        answer = _corrupt(rng, steps, value) if corrupt else "\n".join(steps) + f"\n#### {value}"
        pool.append({"question": question, "answer": answer, "domain": domain, "difficulty": difficulty,
                     "planted": "corrupt" if corrupt else None, "true_answer": str(value)})
    near = round(unique * near_duplicate_rate)
    for row in rng.sample(pool, near):  # a copy whose question differs only in case, spacing or punctuation
        copy = dict(row, question=_near_copy(rng, row["question"]), planted="near_duplicate")
        pool.insert(rng.randrange(len(pool) + 1), copy)
    for row in rng.sample(pool, rows - unique - near):
        pool.insert(rng.randrange(len(pool) + 1), dict(row))  # an exact copy, meta included
    return pool


def fresh_problems(count: int, seed: int, exclude: set[str], draw: int,
                   difficulties: tuple[int, ...] = (1, 2, 3)) -> list[dict]:
    """Up to `count` clean problems (nothing planted) of `draw` made with `seed`, of the given
    difficulties, none of whose questions is in `exclude`: held-out problems and fresh prompts."""
    rows = make_pool(draw, seed=seed, duplicate_rate=0.0, corrupt_rate=0.0, near_duplicate_rate=0.0)
    return [r for r in rows if r["difficulty"] in difficulties and r["question"] not in exclude][:count]


@dataclass
class DemoReport:
    pool_file: Path
    ingest: IngestReport
    planted_duplicates: int
    proxy: dict
    loss_clean: float
    loss_corrupt: float
    seconds: float
    steps: list[str] = field(default_factory=list)
    curation: Any = None  # curate.demo_curation.CurationReport
    loop: Any = None  # curate.loop.LoopReport


def run_demo(
    ws: Workspace,
    rows: int = 2000,
    proxy_steps: int = 80,
    seed: int = 0,
    say: Callable[[str], None] = lambda _: None,
    progress: Callable[[str, int, int], None] | None = None,
    budget: int | str = 300,  # a count, a fraction or a percentage of the pool
    sft_steps: int = 40,
    held_out: int = 100,
    curate: bool = True,
    loop_rounds: int = 4,
) -> DemoReport:
    """Make the pool, ingest it, train the proxy, check the proxy sees the corrupted rows,
    then (with `curate`) select a curated subset and compare SFT on it with SFT on a random one,
    and run `loop_rounds` rounds of the closed loop from the proxy."""
    start = time.perf_counter()
    demo_dir = ws.root / "demo"
    demo_dir.mkdir(exist_ok=True)
    pool = make_pool(rows, seed)
    pool_file = demo_dir / "pool.jsonl"
    with open(pool_file, "w") as fh:
        for row in pool:
            fh.write(json.dumps(row) + "\n")
    planted = len(pool) - len({json.dumps(r, sort_keys=True) for r in pool})
    say(f"made {len(pool):,} demo problems in {pool_file} ({planted} planted duplicates)")

    report = ingest(ws, str(pool_file), IngestOptions(name="demo", license="CC0-1.0"))
    say(f"ingested {report.version.ref}: {report.version.rows:,} rows, {report.duplicates} duplicates dropped")

    config = ProxyConfig(steps=proxy_steps, seed=seed, max_examples=20_000)
    folder, stats = ensure_proxy(ws, report.version, config,
                                 progress=(lambda s, loss: progress("training proxy", s, proxy_steps))
                                 if progress else None)
    say(f"proxy: loss {stats['first_loss']:.2f} -> {stats['final_loss']:.2f} in {stats['seconds']}s"
        + (" (cached)" if stats.get("cached") else ""))

    frame = report.version.scan().select("prompt", "response", "meta").collect()
    planted_col = frame["meta"].str.json_path_match("$.planted")
    rng = np.random.default_rng(seed)
    clean = np.flatnonzero(planted_col.is_null().to_numpy())
    corrupt = np.flatnonzero(planted_col.eq("corrupt").fill_null(False).to_numpy())
    picks = np.concatenate([rng.choice(clean, min(len(clean), 200), replace=False), corrupt[:200]])
    lm = load(str(folder), dtype="float32", device="cpu")
    encoded = encode_pairs([frame["prompt"][int(i)] for i in picks], [frame["response"][int(i)] for i in picks],
                           lm.tokenizer, max_length=lm.max_length)
    losses = np.array([-float(lp.mean()) for lp in token_logprobs(lm, encoded)])
    n_clean = min(len(clean), 200)
    curation = None
    if curate:
        from curate.demo_curation import curate_and_train

        curation = curate_and_train(ws, report.version, folder, budget=budget, sft_steps=sft_steps,
                                    held_out=held_out, seed=seed, say=say, progress=progress)
    loop = None
    if curate and loop_rounds > 0:
        from curate.demo_loop import demo_loop_config, loop_rounds as run_rounds

        loop = run_rounds(ws, folder, set(frame["prompt"].to_list()),  # from the proxy: docs/rl.md says why
                          demo_loop_config(loop_rounds, seed), say=say, progress=progress)
    return DemoReport(pool_file, report, planted, stats, float(losses[:n_clean].mean()),
                      float(losses[n_clean:].mean()) if len(losses) > n_clean else float("nan"),
                      round(time.perf_counter() - start, 1), curation=curation, loop=loop)
