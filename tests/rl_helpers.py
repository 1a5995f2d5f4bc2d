"""Small prompt sets in a workspace, for tests of rollouts, curricula and the loop."""

from __future__ import annotations

from pathlib import Path

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.workspace import Workspace
from tests.conftest import write_jsonl


def prompt_set(ws: Workspace, tmp_path: Path, n: int = 12, name: str = "prompts", start: int = 0):
    rows = [{"question": f"What is {i} plus {i + 1}?", "answer": f"{i} + {i + 1} = {2 * i + 1}\n#### {2 * i + 1}",
             "domain": "even" if i % 2 == 0 else "odd"} for i in range(start, start + n)]
    return ingest(ws, str(write_jsonl(tmp_path / f"{name}.jsonl", rows)), IngestOptions(name=name)).version
