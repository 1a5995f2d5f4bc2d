"""The demo's curation half on a small pool: planted near-duplicates, the three-step chain, two SFT runs."""

from __future__ import annotations

import collections
import json

import pytest

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.versions import lineage_of
from curate.demo import make_pool
from curate.demo_curation import curate_and_train, held_out_problems
from tests.selectors.sft_helpers import install_proxy, write_rows


def test_make_pool_plants_near_duplicates_and_keeps_the_size():
    pool = make_pool(500, seed=1)
    near = {json.dumps(r, sort_keys=True) for r in pool if r["planted"] == "near_duplicate"}
    assert len(pool) == 500 and len(near) == round(round(500 / 1.08) * 0.03)  # exact copies may copy one too
    assert collections.Counter(r["planted"] for r in pool)["corrupt"] > 0
    originals = {r["true_answer"] + r["answer"] for r in pool if r["planted"] != "near_duplicate"}
    for row in (r for r in pool if r["planted"] == "near_duplicate"):
        assert row["true_answer"] + row["answer"] in originals  # same answer, edited question


def test_held_out_problems_are_not_in_the_pool():
    pool = make_pool(300, seed=0)
    questions = {r["question"] for r in pool}
    problems = held_out_problems(50, 0, questions)
    assert len(problems) == 50 and not {p["prompt"] for p in problems} & questions
    assert all(p["response"].endswith(f"#### {p['answer']}") for p in problems)


@pytest.mark.slow
def test_curate_and_train_compares_a_curated_and_a_random_subset(ws, tmp_path, tiny_model_dir):
    version = ingest(ws, str(write_rows(tmp_path / "pool.jsonl", make_pool(160, seed=2))),
                     IngestOptions(name="demo")).version
    proxy = install_proxy(ws, version, tiny_model_dir)
    report = curate_and_train(ws, version, proxy, budget=20, sft_steps=2, held_out=4, reference_steps=2,
                              max_new_tokens=8)
    assert [s.strategy for s in report.curated.steps] == ["dedup", "perplexity", "fisher", "token-clean"]
    assert report.curated.version.rows == 20 and report.random.version.rows == 20
    assert "token_mask" in report.curated.version.columns and "token_mask" not in report.random.version.columns
    chain = ["dedup", "perplexity", "fisher", "token-clean"]
    assert [s["strategy"] for s in lineage_of(ws, report.curated.version)] == chain
    assert set(report.accuracy) == {"curated", "random"} and all(0 <= a <= 1 for a in report.accuracy.values())
    assert all(loss > 0 for loss in report.held_out_loss.values())
    assert 0 < report.kept_token_fraction <= 0.61 and report.near_found <= report.near_planted
    assert report.held_out == 4
