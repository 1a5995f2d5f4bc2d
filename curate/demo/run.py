"""The built-in demo: a synthetic task pool that needs no network and no downloads.

1. The pool (`curate.demo.pool`): arithmetic word problems in GSM8K's layout with the faults
   of a scraped SFT pool planted in 30% of them (wrong answers, garbled and truncated
   responses, off-task text) plus exact and near duplicates; ingested as `demo`.
2. The proxy: a small LM trained on the pool, the model every selector scores with; the
   demo checks that it finds the faulty responses less plausible than the clean ones.
3. The ablation (`curate.demo.curation`): the curated chain against `random` at one budget,
   over several seeds, each arm fine-tuning a base that never saw the pool, scored on fresh
   problems, through `curate compare`.
4. A few rounds of the closed loop from the proxy (`curate.demo.loop`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curate.catalog.ingest import IngestOptions, IngestReport, ingest
from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace
from curate.demo.pool import make_pool
from curate.train.proxy import ProxyConfig, ensure_proxy


@dataclass
class DemoReport:
    pool_file: Path
    ingest: IngestReport
    planted_duplicates: int
    proxy: dict
    loss_clean: float
    loss_faulty: float
    seconds: float
    steps: list[str] = field(default_factory=list)
    curation: Any = None  # curate.demo.curation.AblationReport
    loop: Any = None  # curate.loop.LoopReport


def build_pool(ws: Workspace, rows: int, seed: int, difficulties: tuple[int, ...] = (1,),
               say: Callable[[str], None] = lambda _: None) -> tuple[Path, IngestReport, int]:
    """Write the demo pool to WS/demo/pool.jsonl and ingest it as `demo`; (file, report, planted exact copies)."""
    demo_dir = ws.root / "demo"
    demo_dir.mkdir(exist_ok=True)
    pool = make_pool(rows, seed, difficulties=difficulties)
    pool_file = demo_dir / "pool.jsonl"
    with open(pool_file, "w") as fh:
        for row in pool:
            fh.write(json.dumps(row) + "\n")
    copies = len(pool) - len({json.dumps(r, sort_keys=True) for r in pool})
    faulty = sum(r["planted"] is not None for r in pool)
    say(f"made {len(pool):,} demo problems in {pool_file}: {faulty} with a planted fault ({faulty / len(pool):.0%}), "
        f"{copies} exact and {sum(r['near_duplicate'] for r in pool)} near duplicates")
    report = ingest(ws, str(pool_file), IngestOptions(name="demo", license="CC0-1.0"))
    say(f"ingested {report.version.ref}: {report.version.rows:,} rows, {report.duplicates} duplicates dropped")
    return pool_file, report, copies


def demo_proxy(ws: Workspace, version: DatasetVersion, steps: int, seed: int,
               progress: Callable[[str, int, int | None], None] | None = None) -> tuple[Path, dict]:
    """The pool's proxy (cached in the workspace), trained for `steps` steps."""
    config = ProxyConfig(steps=steps, seed=seed, max_examples=20_000)
    return ensure_proxy(ws, version, config,
                        progress=(lambda s, _loss: progress("training proxy", s, steps)) if progress else None)


def proxy_losses(folder: Path, version: DatasetVersion, seed: int, sample: int = 200) -> tuple[float, float]:
    """Mean proxy loss (nats/token) of `sample` clean responses and of up to `sample` faulty ones."""
    from curate.demo.curation import planted
    from curate.lm.loading import load
    from curate.lm.scoring import token_logprobs
    from curate.lm.templates import encode_pairs

    frame = version.scan().select("prompt", "response", "meta").collect()
    fault = planted(frame)["fault"]
    rng = np.random.default_rng(seed)
    groups = []
    for mask in (fault.is_null().to_numpy(), fault.is_not_null().to_numpy()):
        rows = np.flatnonzero(mask)
        groups.append(rng.choice(rows, min(len(rows), sample), replace=False) if len(rows) else rows)
    lm = load(str(folder), dtype="float32", device="cpu")
    means = []
    for picks in groups:
        if not len(picks):
            means.append(float("nan"))
            continue
        items = encode_pairs([frame["prompt"][int(i)] for i in picks], [frame["response"][int(i)] for i in picks],
                             lm.tokenizer, max_length=lm.max_length)
        means.append(float(np.mean([-float(lp.mean()) for lp in token_logprobs(lm, items)])))
    return means[0], means[1]


def run_demo(
    ws: Workspace,
    rows: int = 2000,
    proxy_steps: int = 80,
    seed: int = 0,
    say: Callable[[str], None] = lambda _: None,
    progress: Callable[[str, int, int | None], None] | None = None,
    curate: bool = True,
    loop_rounds: int = 4,
    ablation: Any = None,  # curate.demo.curation.AblationConfig; None: its defaults
) -> DemoReport:
    """Make and ingest the pool, train the proxy and check it sees the faulty rows; then (with
    `curate`) run the ablation and `loop_rounds` rounds of the closed loop from the proxy."""
    start = time.perf_counter()
    pool_file, report, copies = build_pool(ws, rows, seed, say=say)
    folder, stats = demo_proxy(ws, report.version, proxy_steps, seed, progress)
    say(f"proxy: loss {stats['first_loss']:.2f} -> {stats['final_loss']:.2f} in {stats['seconds']}s"
        + (" (cached)" if stats.get("cached") else ""))
    loss_clean, loss_faulty = proxy_losses(folder, report.version, seed)
    curation = loop = None
    if curate:
        from curate.demo.curation import AblationConfig, run_ablation

        config = ablation or AblationConfig(seed=seed)
        curation = run_ablation(ws, report.version, folder, config, say=say, progress=progress)
        if loop_rounds > 0:
            from curate.demo.loop import demo_loop_config, loop_rounds as run_rounds

            exclude = set(report.version.scan().select("prompt").collect()["prompt"].to_list())
            loop = run_rounds(ws, folder, exclude, demo_loop_config(loop_rounds, seed), say=say,  # docs/rl.md: why
                              progress=progress)                                                   # the proxy
    return DemoReport(pool_file, report, copies, stats, loss_clean, loss_faulty,
                      round(time.perf_counter() - start, 1), curation=curation, loop=loop)
