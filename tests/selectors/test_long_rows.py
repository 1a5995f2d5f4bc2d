"""Issue 16.12: one multi-MB row must not make a perplexity selection tokenize megabytes."""

from __future__ import annotations

import tracemalloc

from curate.catalog.ingest import IngestOptions, ingest
from tests.conftest import write_jsonl

ROW_CHARS = 6_000_000


def test_a_huge_row_is_cut_to_the_context_counted_and_memory_stays_bounded(ws, tmp_path, tiny_model_dir):
    from curate.selectors.pipeline import run_select

    rows = [{"prompt": f"What is {i} + {i}?", "response": f"It is {2 * i}."} for i in range(6)]
    rows.append({"prompt": "Summarise this. " + "x" * 1000, "response": "word " * (ROW_CHARS // 5)})
    rows.append({"prompt": "ab " * (ROW_CHARS // 3), "response": "short"})
    ingest(ws, str(write_jsonl(tmp_path / "pool.jsonl", rows)), IngestOptions(name="pool"))

    tracemalloc.start()
    try:
        report = run_select(ws, "pool", "perplexity", budget="1", model=str(tiny_model_dir))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (step,) = report.steps
    assert step.stats["truncated_rows"] == 2  # the two long rows; the tiny model's context is 1,024 tokens
    assert report.version.rows == 1
    # Python objects at the peak: the rows' own text (each string once, plus polars' copy of the
    # batch) and small change. Tokenizing a 6 MB row whole makes a 6M-element id list (48 MB) and more.
    assert peak < 6 * ROW_CHARS, f"peak {peak / 1e6:.1f} MB"
