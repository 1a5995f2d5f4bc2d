"""fisher and dedup on real data: a GSM8K slice with stories260K (skipped without ../shared)."""

from __future__ import annotations

import json

from tests.conftest import shared_file
from curate.catalog.versions import lineage_of
from curate.selectors.pipeline import run_select
from tests.selectors.sft_helpers import ingest_rows


def test_fisher_on_gsm8k_with_stories260k(ws, tmp_path, shared, stories_model):
    path = shared_file(shared, "data/gsm8k/train.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()[:120]]
    rows.append(dict(rows[3], question=rows[3]["question"].lower()))  # a case-edited copy
    ingest_rows(ws, tmp_path, rows, name="gsm8k")
    report = run_select(ws, "gsm8k", "dedup,fisher", budget=20, model=str(stories_model),
                        params={"dedup.threshold": "0.99"})
    steps = lineage_of(ws, report.version)
    assert [s["strategy"] for s in steps] == ["dedup", "fisher"] and report.version.rows == 20
    assert steps[1]["model_id"] == str(stories_model) and steps[1]["rows_out"] == 20
    assert steps[1]["drop_counts"]["below_budget"] == steps[1]["rows_in"] - 20
    assert report.steps[1].stats["logdet"] > 0
