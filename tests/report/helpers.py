"""Helpers for the report tests (not a test module): a small workspace with a two-step selection."""

from __future__ import annotations

from pathlib import Path

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.workspace import Workspace
from curate.selectors.pipeline import SelectReport, run_select
from tests.conftest import write_jsonl
from tests.selectors.sft_helpers import word_problems

DOMAINS = ("garden", "math", "shopping")


def pool_rows(n: int = 120) -> list[dict]:
    rows = word_problems(n, seed=3)
    for i, row in enumerate(rows):
        row["domain"] = DOMAINS[i % 3]
    return rows + [dict(r) for r in rows[:6]]  # 6 exact duplicates, dropped at ingest


def selected(ws: Workspace, folder: Path) -> SelectReport:
    """pool@v1 (120 rows, 3 domains) -> length (keeps 60) -> random (keeps 20) = pool-length-random@v1."""
    ingest(ws, str(write_jsonl(folder / "pool.jsonl", pool_rows())), IngestOptions(name="pool", license="CC0-1.0"))
    return run_select(ws, "pool", "length,random", budget=20, params={"length.budget": "60"}, seed=1)
