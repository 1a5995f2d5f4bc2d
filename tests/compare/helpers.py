"""Small pools, held-out sets and configs for the compare tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace
from curate.compare import CompareConfig
from tests.selectors.sft_helpers import ingest_rows, word_problems


def problems(n: int, seed: int, tag: str) -> list[dict]:
    """Word problems with a reference answer; `tag` keeps two sets' prompts apart."""
    return [{"prompt": f"{r['question']} [{tag}]", "response": r["answer"], "answer": r["answer"].rsplit("#### ", 1)[1]}
            for r in word_problems(n, seed)]


def pool_and_eval(ws: Workspace, folder: Path, pool_rows: int = 40, eval_rows: int = 6
                  ) -> tuple[DatasetVersion, DatasetVersion]:
    return (ingest_rows(ws, folder, problems(pool_rows, 0, "pool"), "pool"),
            ingest_rows(ws, folder, problems(eval_rows, 1, "held"), "held"))


def tiny_config(tiny: Path, **overrides) -> CompareConfig:
    """A comparison that runs in seconds: the tiny model is both scorer and base, 2 SFT steps."""
    settings = dict(pool="pool", eval="held", model=str(tiny), strategies=["length"], budget=8, seeds=2, steps=2,
                    scorer_model=str(tiny), lr=1e-3, warmup=1, batch_tokens=1024, max_new_tokens=4, device="cpu")
    return CompareConfig(**{**settings, **overrides})
