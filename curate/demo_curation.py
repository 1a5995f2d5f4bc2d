"""The demo's second half: curate a subset, train on it and on a random one, compare.

1. `dedup,perplexity,fisher,token-clean` at a budget, with the proxy: near-duplicates out,
   the 20% of rows the proxy finds least plausible out (a quality filter: FisherSFT alone
   prefers corrupted rows, which look novel; measured 22% corrupted in its pick against 10%
   in the pool), the most informative problems in (FisherSFT), then the uninformative
   response tokens masked (Token Cleaning; the reference is the proxy warmed up on a sample).
2. `random` at the same size, from the same pool.
3. SFT from the proxy on each (same steps, seed and data order) and greedy decoding on
   held-out problems the pool never saw; accuracy is the `math` reward (final number).

Everything runs through the same functions as `curate select` and `curate train sft`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace
from curate.selectors.pipeline import SelectReport, run_select

CHAIN = "dedup,perplexity,fisher,token-clean"


@dataclass
class CurationReport:
    curated: SelectReport
    random: SelectReport
    near_planted: int
    near_found: int
    corrupt_rate: dict[str, float]  # pool, curated, random
    kept_token_fraction: float
    held_out: int
    accuracy: dict[str, float]  # curated, random
    held_out_loss: dict[str, float]
    seconds: float


def _planted(frame: pl.DataFrame) -> pl.Series:
    """What was planted in each row (`meta.planted`: corrupt, near_duplicate, or null)."""
    return frame["meta"].str.json_path_match("$.planted")


def _corrupt_rate(frame: pl.DataFrame) -> float:
    return float((_planted(frame) == "corrupt").sum() / max(1, frame.height))


def _near_duplicates_found(ws: Workspace, pool: pl.DataFrame, curated: DatasetVersion) -> tuple[int, int]:
    """(planted near-duplicate pairs, pairs of which dedup dropped one member as the other's copy).

    A planted copy keeps its original's response, so a pair is found when a `near_duplicate`
    drop and the row it matched share a response and one of them is the planted copy; which
    of the two is kept depends only on pool order."""
    response = dict(zip(pool["id"].to_list(), pool["response"].to_list()))
    planted = set(pool["id"].filter(_planted(pool) == "near_duplicate").to_list())
    with ws.catalog() as con:
        drops = con.execute("SELECT id, detail FROM drops WHERE name = ? AND version = ? AND step = 0 "
                            "AND reason = 'near_duplicate'", [curated.name, curated.version]).fetchall()
    found = {a if a in planted else b for a, b in ((i, d.rsplit(" to ", 1)[1]) for i, d in drops)
             if response.get(a) == response.get(b) and (a in planted or b in planted)}
    return len(planted), len(found)


def held_out_problems(count: int, seed: int, exclude: set[str]) -> list[dict]:
    """Fresh problems (another seed), none of whose questions is in the pool."""
    from curate.demo import fresh_problems

    return [{"prompt": r["question"], "response": r["answer"], "answer": r["true_answer"]}
            for r in fresh_problems(count, seed + 1000, exclude, draw=count * 2)]


def evaluate(model_dir: str, problems: list[dict], max_new_tokens: int = 64) -> tuple[float, float]:
    """(accuracy of greedy answers by the `math` reward, mean response loss) on `problems`."""
    import numpy as np

    from curate.lm.generation import HFBackend, SamplingParams
    from curate.lm.loading import load
    from curate.lm.scoring import token_logprobs
    from curate.lm.templates import encode_pairs
    from curate.train.rewards import math_reward

    lm = load(model_dir, dtype="float32", device="cpu")
    prompts = [p["prompt"] for p in problems]
    outputs = HFBackend(lm, batch_size=32).generate(prompts, 1, SamplingParams(temperature=0.0,
                                                                                max_new_tokens=max_new_tokens))
    rewards = math_reward(prompts, [o[0].text for o in outputs], answer=[p["answer"] for p in problems])
    items = encode_pairs(prompts, [p["response"] for p in problems], lm.tokenizer, max_length=lm.max_length)
    loss = float(-np.concatenate(list(token_logprobs(lm, items))).mean())
    return float(np.mean([r or 0.0 for r in rewards])), loss


def curate_and_train(
    ws: Workspace,
    version: DatasetVersion,
    proxy_dir: Path,
    budget: int = 300,
    sft_steps: int = 40,
    held_out: int = 100,
    reference_steps: int = 30,
    quality_keep: float = 0.8,
    max_new_tokens: int = 64,
    seed: int = 0,
    say: Callable[[str], None] = lambda _: None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> CurationReport:
    from curate.train.sft import SFTConfig, train_sft

    start = time.perf_counter()
    params = {"perplexity.budget": str(quality_keep), "fisher.dim": "32", "token-clean.warmup_rows": "200",
              "token-clean.steps": str(reference_steps), "token-clean.lr": "1e-3", "token-clean.batch_tokens": "4096"}
    curated = run_select(ws, version.ref, CHAIN, budget=budget, model=str(proxy_dir),
                         out="demo-curated", params=params, seed=seed, progress=progress)
    dedup, quality, fisher, clean = curated.steps
    pool = version.scan().select("id", "prompt", "response", "meta").collect()
    near_planted, near_found = _near_duplicates_found(ws, pool, curated.version)
    say(f"dedup: {dedup.rows_in - dedup.rows_out} near-duplicates dropped, {near_found} of the "
        f"{near_planted} planted pairs found")
    say(f"perplexity: {quality.rows_in - quality.rows_out} least plausible rows dropped")
    say(f"fisher: {fisher.rows_out} of {fisher.rows_in} problems picked by greedy log-det")
    say(f"token-clean: {clean.stats['kept_fraction']:.0%} of response tokens kept")
    random = run_select(ws, version.ref, "random", budget=curated.version.rows, out="demo-random", seed=seed)
    say(f"random: {random.version.rows} problems, for comparison")

    rates = {"pool": _corrupt_rate(pool), **{name: _corrupt_rate(r.version.scan().select("meta").collect())
                                             for name, r in (("curated", curated), ("random", random))}}
    problems = held_out_problems(held_out, seed, set(pool["prompt"].to_list()))
    accuracy, losses = {}, {}
    config = {"steps": sft_steps, "lr": 1e-3, "batch_tokens": 4096, "warmup": max(1, sft_steps // 10), "seed": seed,
              "save_every": 0}
    for name, report in (("curated", curated), ("random", random)):
        out = ws.root / "demo" / f"sft-{name}-v{report.version.version}"
        train_sft(str(proxy_dir), report.version, out, SFTConfig(**config),
                  progress=(lambda step, _m, name=name: progress(f"SFT on the {name} subset", step, sft_steps))
                  if progress else None)
        accuracy[name], losses[name] = evaluate(str(out), problems, max_new_tokens)
        say(f"SFT on {report.version.ref}: held-out accuracy {accuracy[name]:.1%}, loss {losses[name]:.3f}")
    (ws.root / "demo" / "curation.json").write_text(json.dumps({"accuracy": accuracy, "loss": losses,
                                                                "corrupt_rate": rates}, indent=2))
    return CurationReport(curated, random, near_planted, near_found, rates,
                          float(clean.stats["kept_fraction"]), len(problems), accuracy, losses,
                          round(time.perf_counter() - start, 1))
