"""Curriculum stages from the prompt ledger (`curate curriculum NAME --stages K`).

Two layouts:
- easy-to-hard: the prompts the ledger has seen, sorted by posterior mean pass rate from
  easiest to hardest and cut into K stages of (nearly) equal size;
- bands: stage i keeps the prompts whose observed pass rate lies in band i (by default K
  equal-width bands from [1 - 1/K, 1] down to [0, 1/K]; or `--bands 0.7-1,0.4-0.7,...`), the
  "target band per round" schedule of online difficulty filtering.

Each stage is a dataset version (`OUT-s1` ... `OUT-sK`) whose lineage records the stage,
its pass-rate range and the model key; stages can be exported for TRL or verl as Parquet
with `prompt` and `answer` columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from curate.catalog.export import export_version
from curate.catalog.selections import commit_selection
from curate.catalog.versions import DatasetVersion, Lineage, check_name, resolve
from curate.catalog.workspace import Workspace
from curate.errors import BadInput, BadUsage
from curate.selectors.rl.difficulty import ledger_view, resolve_model_key
from curate.selectors.random_sample import hash_uniform

LAYOUTS = ("easy-to-hard", "bands")


@dataclass
class Stage:
    index: int
    version: DatasetVersion
    pass_rate_min: float
    pass_rate_max: float
    exported: Path | None = None


@dataclass
class CurriculumReport:
    source: DatasetVersion
    model_key: str
    layout: str
    stages: list[Stage]
    unseen: int
    unplaced: int
    empty_stages: list[int] = field(default_factory=list)


def parse_bands(text: str) -> list[tuple[float, float]]:
    bands = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            band = (float(lo), float(hi))
        except ValueError:
            raise BadUsage(f"--bands {text!r}: {part!r} is not LO-HI", hint="e.g. --bands 0.7-1,0.4-0.7,0.1-0.4") from None
        if not sep or not 0 <= band[0] <= band[1] <= 1:
            raise BadUsage(f"--bands {text!r}: {part!r} must be LO-HI with 0 <= LO <= HI <= 1")
        bands.append(band)
    return bands


def default_bands(stages: int) -> list[tuple[float, float]]:
    """K equal-width pass-rate bands, easiest first."""
    edges = np.linspace(1.0, 0.0, stages + 1)
    return [(float(edges[i + 1]), float(edges[i])) for i in range(stages)]


def build_curriculum(
    ws: Workspace,
    ref: str,
    stages: int = 3,
    layout: str = "easy-to-hard",
    bands: list[tuple[float, float]] | None = None,
    model_key: str | None = None,
    out: str | None = None,
    export_dir: Path | None = None,
    seed: int = 0,
) -> CurriculumReport:
    if layout not in LAYOUTS:
        raise BadUsage(f"unknown curriculum layout {layout!r}", hint="--layout " + "|".join(LAYOUTS))
    if bands is not None:
        stages = len(bands)
    if stages < 1:
        raise BadUsage("--stages must be >= 1")
    source = resolve(ws, ref)
    if source.rows == 0:
        raise BadInput(f"dataset {source.ref} is empty")
    ids = source.scan().select("id").collect()["id"]
    key = resolve_model_key(ws, ids, model_key)
    view = ledger_view(ws, ids, key)
    seen = np.flatnonzero(view.attempts > 0)
    if len(seen) == 0:
        raise BadUsage(f"the ledger has no scored rollouts of {source.ref} under model key {key}",
                       hint="run `curate rollouts` first")
    prefix = check_name(out or f"{source.name}-curriculum")
    tiebreak = hash_uniform(ids, seed)
    if layout == "easy-to-hard":
        mean = view.alpha / (view.alpha + view.beta)
        order = seen[np.lexsort((tiebreak[seen], -mean[seen]))]
        groups = list(np.array_split(order, stages))
        ranges = [(float(view.pass_rate[g].min()), float(view.pass_rate[g].max())) if len(g) else (np.nan, np.nan)
                  for g in groups]
    else:
        bands = bands or default_bands(stages)
        rate = view.pass_rate
        groups, ranges = [], []
        for lo, hi in bands:
            inside = seen[(rate[seen] >= lo) & (rate[seen] <= hi)]
            groups.append(inside[np.lexsort((tiebreak[inside], -rate[inside]))])
            ranges.append((lo, hi))
    placed = np.unique(np.concatenate(groups))
    report = CurriculumReport(source, key, layout, [], unseen=int(len(ids) - len(seen)),
                              unplaced=int(len(seen) - len(placed)))
    for index, (group, (lo, hi)) in enumerate(zip(groups, ranges), start=1):
        if len(group) == 0:
            report.empty_stages.append(index)
            continue
        params = {"layout": layout, "stage": index, "stages": stages, "pass_rate": [lo, hi], "model_key": key}
        step = Lineage(op="curriculum", inputs=[source.ref], strategy="difficulty", params=params, seed=seed,
                       rows_in=source.rows, rows_out=len(group),
                       drop_counts={"other_stages": int(len(seen) - len(group)), "no_rollouts": report.unseen})
        kept = pl.DataFrame({"id": ids.gather(group), "rank": np.arange(len(group))})
        version = commit_selection(ws, source, f"{prefix}-s{index}", kept, [step], strategy="difficulty",
                                   budget=None, params=params)
        stage = Stage(index, version, lo, hi)
        if export_dir is not None:
            target = Path(export_dir) / f"{prefix}-s{index}.parquet"
            stage.exported = export_version(version, target, columns="prompt", overwrite=True).path
        report.stages.append(stage)
    if not report.stages:
        raise BadInput("every stage is empty: no prompt's pass rate falls in the bands", hint="widen --bands")
    return report
