"""`curate compare` results in the report: per strategy, the mean over seeds with a 95% interval, and
the paired difference to `random` (same seeds) where the comparison has a random arm.

The `comparisons` table belongs to `curate compare`; a workspace made before it existed has no
such table, so the report checks for the table and its columns before reading it.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace, query_frame

NEEDED = {"name", "pool", "strategy", "seed", "metric", "value"}
# Two-sided 95% Student t quantiles for 1..30 degrees of freedom; 1.96 beyond.
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
       2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t95(df: int) -> float:
    return T95[df - 1] if 1 <= df <= len(T95) else 1.96


def mean_interval(values: list[float]) -> dict[str, Any]:
    """n, mean, sd and the 95% t interval of the mean (no interval from a single value)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "lo": None, "hi": None}
    mean = statistics.fmean(values)
    if n == 1:
        return {"n": 1, "mean": mean, "sd": None, "lo": None, "hi": None}
    sd = statistics.stdev(values)
    half = t95(n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "lo": mean - half, "hi": mean + half}


def _columns(ws: Workspace) -> set[str]:
    with ws.catalog() as con:
        rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'comparisons'"
                           ).fetchall()
    return {r[0] for r in rows}


def comparisons_section(ws: Workspace, version: DatasetVersion) -> list[dict[str, Any]] | None:
    """None when the workspace has no comparisons table; else one entry per comparison and metric
    run on this version (as the pool, or as one arm's selection)."""
    columns = _columns(ws)
    if not NEEDED <= columns:
        return None
    where = "pool = ?" + (" OR selection = ?" if "selection" in columns else "")
    done = " AND status = 'done'" if "status" in columns else ""
    params = [version.ref] * (2 if "selection" in columns else 1)
    extra = ", eval" if "eval" in columns else ", NULL AS eval"
    with ws.catalog() as con:
        frame = query_frame(con, f"SELECT name, pool{extra}, strategy, seed, metric, value FROM comparisons "
                                 f"WHERE ({where}){done} ORDER BY name, metric, strategy, seed", params)
    out = []
    for (name, metric), group in frame.group_by(["name", "metric"], maintain_order=True):
        by_strategy: dict[str, dict[int, float]] = {}
        for row in group.to_dicts():
            by_strategy.setdefault(row["strategy"], {})[row["seed"]] = row["value"]
        baseline = by_strategy.get("random")
        arms = []
        for strategy, values in by_strategy.items():
            arm = {"strategy": strategy, "seeds": sorted(values), **mean_interval(list(values.values()))}
            if baseline is not None and strategy != "random":
                paired = [values[s] - baseline[s] for s in values if s in baseline
                          and values[s] is not None and baseline[s] is not None]
                arm["vs_random"] = mean_interval(paired)
            arms.append(arm)
        first = group.row(0, named=True)
        out.append({"name": name, "metric": metric, "pool": first["pool"], "eval": first["eval"], "arms": arms})
    return out
