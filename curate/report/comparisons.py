"""`curate compare` results in the report: per strategy, the mean over seeds with its 95% t interval,
and the paired difference to `random` over the same seeds with its paired t interval.

The numbers come from the same functions `curate compare` prints with (`curate.util.stats`), over
the cells the `comparisons` table holds as done, so the report and the command never disagree.
"""

from __future__ import annotations

import math
from typing import Any

from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace, query_frame
from curate.util.stats import ArmSummary, summarize


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _interval(ci: tuple[float, float] | None) -> tuple[float | None, float | None]:
    return (None, None) if ci is None else (_finite(ci[0]), _finite(ci[1]))


def _arm(arm: ArmSummary) -> dict[str, Any]:
    lo, hi = _interval(arm.ci)
    out: dict[str, Any] = {"strategy": arm.strategy, "seeds": arm.seeds, "n": arm.n, "mean": _finite(arm.mean),
                           "sd": _finite(arm.sd), "lo": lo, "hi": hi}
    if arm.paired_seeds:
        plo, phi = _interval(arm.diff_ci_t)
        out["vs_random"] = {"n": len(arm.paired_seeds), "mean": _finite(arm.diff_mean), "lo": plo, "hi": phi}
    return out


def comparisons_section(ws: Workspace, version: DatasetVersion) -> list[dict[str, Any]]:
    """One entry per comparison and metric run on this version (as the pool, or as one arm's selection)."""
    with ws.catalog() as con:
        frame = query_frame(con, "SELECT name, pool, eval, strategy, seed, metric, value FROM comparisons "
                                 "WHERE (pool = ? OR selection = ?) AND status = 'done' AND value IS NOT NULL "
                                 "ORDER BY name, metric, strategy, seed", [version.ref, version.ref])
    out = []
    for (name, metric), group in frame.group_by(["name", "metric"], maintain_order=True):
        by_strategy: dict[str, dict[int, float]] = {}
        for row in group.to_dicts():
            by_strategy.setdefault(row["strategy"], {})[row["seed"]] = row["value"]
        first = group.row(0, named=True)
        out.append({"name": name, "metric": metric, "pool": first["pool"], "eval": first["eval"],
                    "arms": [_arm(arm) for arm in summarize(by_strategy, metric)]})
    return out
