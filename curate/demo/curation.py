"""The demo's ablation: does the curated selection train a better model than a random one?

Everything runs through `curate.compare.run_compare`, the function behind `curate compare`:

- POOL: the demo pool (`curate.demo.pool`: 30% planted faults, exact and near duplicates);
- EVAL: `demo-heldout`, fresh problems made with another seed, none in the pool;
- BASE: a model that has not seen the pool (`curate.demo.base`: warmed up on `demo-warmup`,
  clean problems none of which is in the pool or EVAL), or any folder given as `base`;
- SCORER: the pool's proxy, for every selector;
- ARMS: `random` and the curated chain (`CURATED`), each keeping `budget` rows, for `seeds`
  seeds; one SFT recipe for every cell; accuracy of greedy answers by the `math` reward.

The protocol, and why CURATED is the chain it is (the arm that measured best on this pool,
`benchmarks/bench_demo_arms.py`), are in docs/decisions.md, "The demo".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.versions import DatasetVersion, resolve
from curate.catalog.workspace import Workspace
from curate.demo.base import BaseConfig, ensure_base
from curate.demo.pool import fresh_problems

CURATED = "dedup,perplexity,random"
CURATED_PARAMS = {"perplexity.budget": "0.5"}  # drop the less plausible half (of the pool's rows), then sample
# Every arm measured on the demo pool (benchmarks/bench_demo_arms.py), fixed before any was run. Filters
# before a random sample keep the better-scoring half of the pool's rows. The proxy scores for all but
# token-clean, whose masks must be in the trained model's tokenizer: it is measured with the base as the
# scorer, beside the same chain without it (TOKEN_CLEAN_ARMS).
CANDIDATES = ("dedup,random", "dedup,perplexity,random", "dedup,ifd,random", "dedup,perplexity,fisher", "dedup,fisher")
CANDIDATE_PARAMS = {"perplexity.budget": "0.5", "ifd.budget": "0.5", "fisher.dim": "32"}
TOKEN_CLEAN_ARMS = ("dedup,perplexity,random", "dedup,perplexity,random,token-clean")
TOKEN_CLEAN_PARAMS = {"perplexity.budget": "0.5", "token-clean.warmup_data": "demo-warmup",
                      "token-clean.batch_tokens": "2048"}
HELDOUT_SEED, WARMUP_SEED = 1000, 3000  # offsets from the demo's seed; the loop's prompts use 2000


@dataclass
class AblationConfig:
    budget: int = 400  # rows every arm keeps
    seeds: int = 3
    sft_steps: int = 600  # about 24 epochs of the budget at 512 tokens (~16 problems) a step; chosen on a dev set
    lr: float = 1e-3
    batch_tokens: int = 512
    warmup: int = 5
    held_out: int = 200  # fresh problems in EVAL
    heldout_offset: int = HELDOUT_SEED  # EVAL's seed offset; benchmarks choose recipes on another (a dev set)
    max_new_tokens: int = 32
    strategies: list[str] = field(default_factory=lambda: [CURATED])
    params: dict[str, str] = field(default_factory=lambda: dict(CURATED_PARAMS))
    base: str | None = None  # a model folder; None: the warmed-up demo base
    base_config: BaseConfig = field(default_factory=BaseConfig)
    difficulties: tuple[int, ...] = (1,)
    out: str = "demo-compare"  # the comparison's name
    seed: int = 0


@dataclass
class AblationReport:
    compare: Any  # curate.compare.CompareResult
    heldout: DatasetVersion
    base: str
    base_stats: dict | None  # the warm-up (None for a given base)
    faulty: dict[str, float]  # arm (and "pool") -> mean share of rows with a planted fault in its picks
    faulty_by_kind: dict[str, dict[str, float]]
    near_planted: int
    near_found: int
    seconds: float


def planted(frame: pl.DataFrame) -> pl.DataFrame:
    """The fault planted in each row (`fault`, null when none) and whether it is a near-duplicate copy."""
    meta = frame["meta"]
    return pl.DataFrame({"fault": meta.str.json_path_match("$.planted"),
                         "near": meta.str.json_path_match("$.near_duplicate").eq("true").fill_null(False)})


def _fault_shares(version: DatasetVersion) -> dict[str, float]:
    marks = planted(version.scan().select("meta").collect())
    counts = marks["fault"].drop_nulls().value_counts()
    shares = {kind: n / max(1, version.rows) for kind, n in zip(counts["fault"], counts["count"])}
    return {"any": float(marks["fault"].is_not_null().mean() or 0.0), **shares}


def near_duplicates_found(ws: Workspace, pool: DatasetVersion, selection: DatasetVersion) -> tuple[int, int]:
    """(planted near-duplicate copies in the pool, copies of which the selection's dedup dropped
    one of the pair: the copy, or its original when the copy came first in the pool)."""
    frame = pool.scan().select("id", "response", "meta").collect()
    marks = planted(frame)
    copies = set(frame["id"].filter(marks["near"]).to_list())
    response = dict(zip(frame["id"].to_list(), frame["response"].to_list()))
    with ws.catalog() as con:
        drops = con.execute("SELECT id, detail FROM drops WHERE name = ? AND version = ? AND reason = "
                            "'near_duplicate'", [selection.name, selection.version]).fetchall()
    found = {a if a in copies else b for a, b in ((i, d.rsplit(" to ", 1)[1]) for i, d in drops)
             if response.get(a) == response.get(b) and (a in copies or b in copies)}
    return len(copies), len(found)


def heldout_problems(count: int, seed: int, exclude: set[str], difficulties: tuple[int, ...] = (1,),
                     offset: int = HELDOUT_SEED) -> list[dict]:
    """Fresh problems (another seed), none of whose questions is in `exclude`, with their answers."""
    return [{"question": r["question"], "answer": r["answer"], "difficulty": r["difficulty"]}
            for r in fresh_problems(count, seed + offset, exclude, draw=count * 4, difficulties=difficulties)]


def warmup_problems(count: int, seed: int, exclude: set[str], difficulties: tuple[int, ...] = (1,)) -> list[dict]:
    """Clean problems for the base's warm-up (another seed again), none of whose questions is in `exclude`."""
    return [{"question": r["question"], "answer": r["answer"]}
            for r in fresh_problems(count, seed + WARMUP_SEED, exclude, draw=count * 4, difficulties=difficulties)]


def _ingest_rows(ws: Workspace, rows: list[dict], name: str) -> DatasetVersion:
    """Clean problems in GSM8K layout as a dataset version (`answer` becomes the final number)."""
    path = ws.root / "demo" / f"{name}.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ingest(ws, str(path), IngestOptions(name=name, license="CC0-1.0")).version


def prepare(ws: Workspace, pool: DatasetVersion, config: AblationConfig,
            progress: Callable[[str, int, int | None], None] | None = None) -> tuple[DatasetVersion, str, dict | None]:
    """EVAL and the base: (held-out version, base model folder, warm-up stats or None)."""
    questions = set(pool.scan().select("prompt").collect()["prompt"].to_list())
    heldout = _ingest_rows(ws, heldout_problems(config.held_out, config.seed, questions, config.difficulties,
                                                config.heldout_offset),
                           "demo-heldout")
    if config.base is not None:
        return heldout, config.base, None
    exclude = questions | set(heldout.scan().select("prompt").collect()["prompt"].to_list())
    warm = _ingest_rows(ws, warmup_problems(config.base_config.problems, config.seed, exclude, config.difficulties),
                        "demo-warmup")
    steps = config.base_config.steps
    report = (lambda s, _m: progress("training the base (warm-up)", s, steps)) if progress else None
    folder, stats = ensure_base(ws, warm, config.base_config, progress=report)
    return heldout, str(folder), stats


def run_ablation(
    ws: Workspace,
    pool: DatasetVersion,
    scorer: Path | str,
    config: AblationConfig,
    say: Callable[[str], None] = lambda _: None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> AblationReport:
    """`random` against `config.strategies` on `pool` at one budget, through `curate compare`; the
    selectors score with `scorer` (a model folder, or "base": the model the arms fine-tune)."""
    from curate.compare import CompareConfig, run_compare

    start = time.perf_counter()
    heldout, base, base_stats = prepare(ws, pool, config, progress)
    if base_stats is not None:
        say(f"base: warmed up on {base_stats['warmup']} ({base_stats['tokens']:,} tokens, loss "
            f"{base_stats['first_loss']:.2f} -> {base_stats['final_loss']:.2f})"
            + (" (cached)" if base_stats.get("cached") else f" in {base_stats['seconds']}s"))
    result = run_compare(ws, CompareConfig(
        pool=pool.ref, eval=heldout.ref, model=base, strategies=list(config.strategies), budget=config.budget,
        seeds=config.seeds, steps=config.sft_steps, scorer_model=base if scorer == "base" else str(scorer),
        params=dict(config.params), out=config.out, seed=config.seed, lr=config.lr, batch_tokens=config.batch_tokens,
        warmup=config.warmup, save_every=0, max_new_tokens=config.max_new_tokens, eval_batch_size=64),
        say=say, progress=progress)
    by_arm: dict[str, list[dict[str, float]]] = {}
    for cell in result.cells:
        if cell.selection:
            by_arm.setdefault(cell.strategy, []).append(_fault_shares(resolve(ws, cell.selection)))
    kinds = {k for shares in by_arm.values() for s in shares for k in s} | set(_fault_shares(pool))
    by_kind = {arm: {k: sum(s.get(k, 0.0) for s in shares) / len(shares) for k in sorted(kinds)}
               for arm, shares in by_arm.items()}
    by_kind["pool"] = {k: _fault_shares(pool).get(k, 0.0) for k in sorted(kinds)}
    deduped = next((c for c in result.cells if c.selection and c.strategy.startswith("dedup")), None)
    near_planted, near_found = near_duplicates_found(ws, pool, resolve(ws, deduped.selection)) if deduped else (0, 0)
    return AblationReport(result, heldout, base, base_stats, {arm: s["any"] for arm, s in by_kind.items()}, by_kind,
                          near_planted, near_found, round(time.perf_counter() - start, 1))
