"""The demo's ablation at CI size: the mechanics (arms, budget, seeds, held-out, base, counts), not the winner."""

from __future__ import annotations

import json

import pytest

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.versions import lineage_of, resolve
from curate.demo.base import BaseConfig
from curate.demo.curation import CURATED, AblationConfig, heldout_problems, run_ablation, warmup_problems
from curate.demo.pool import make_pool
from tests.selectors.sft_helpers import write_rows


def test_held_out_and_warmup_problems_are_not_in_the_pool_nor_in_each_other():
    pool = make_pool(300, seed=0, difficulties=(1,))
    questions = {r["question"] for r in pool}
    held = heldout_problems(50, 0, questions)
    warm = warmup_problems(200, 0, questions | {p["question"] for p in held})
    assert len(held) == 50 and len(warm) == 200
    assert not {p["question"] for p in held} & questions
    assert not {p["question"] for p in warm} & (questions | {p["question"] for p in held})
    assert all(p["answer"].endswith("\n#### " + p["answer"].rsplit(" ", 1)[1]) for p in held)


@pytest.mark.slow
def test_ablation_runs_random_and_the_curated_chain_through_compare(ws, tmp_path, tiny_model_dir):
    rows = make_pool(200, seed=2, difficulties=(1,))
    pool = ingest(ws, str(write_rows(tmp_path / "pool.jsonl", rows)), IngestOptions(name="demo")).version
    config = AblationConfig(budget=20, seeds=2, sft_steps=2, held_out=10, max_new_tokens=4,
                            base_config=BaseConfig(problems=60, steps=2, batch_tokens=512))
    report = run_ablation(ws, pool, tiny_model_dir, config)
    compare = report.compare

    assert [a.strategy for a in compare.arms] == ["random", CURATED]
    assert all(a.n == 2 and all(0 <= v <= 1 for v in a.values) for a in compare.arms)
    assert compare.arms[1].diff_mean == pytest.approx(compare.arms[1].mean - compare.arms[0].mean)
    assert compare.base is not None and compare.base_model == report.base
    cells = [c for c in compare.cells if c.selection]
    assert len(cells) == 4 and {c.seed for c in cells} == {0, 1}
    for cell in cells:
        assert resolve(ws, cell.selection).rows == 20
    curated = next(resolve(ws, c.selection) for c in cells if c.strategy == CURATED)
    steps = lineage_of(ws, curated)
    assert [s["strategy"] for s in steps] == ["dedup", "perplexity", "random"]
    assert abs(steps[1]["rows_out"] - 0.5 * pool.rows) <= 1  # the filter keeps half of the pool's rows

    held = [json.loads(line) for line in (ws.root / "demo" / "demo-heldout.jsonl").read_text().splitlines()]
    assert report.heldout.rows == len(held) == 10
    assert not {h["question"] for h in held} & {r["question"] for r in rows}
    unique = {json.dumps(r, sort_keys=True): r for r in rows}.values()  # ingest drops the exact copies
    assert report.faulty["pool"] == pytest.approx(sum(r["planted"] is not None for r in unique) / pool.rows)
    assert all(0 <= share <= 1 for share in report.faulty.values()) and set(report.faulty) == {"pool", "random",
                                                                                               CURATED}
    assert 0 <= report.near_found <= report.near_planted == sum(r["near_duplicate"] for r in unique)
    assert report.base_stats["warmup"].startswith("demo-warmup@") and not report.base_stats["cached"]

    again = run_ablation(ws, pool, tiny_model_dir, config)  # a rerun reuses every finished cell and the base
    assert again.compare.computed == 0 and again.base_stats["cached"]
    assert [a.values for a in again.compare.arms] == [a.values for a in compare.arms]
