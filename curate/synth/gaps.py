"""Where a dataset is thin: rows per domain, or per difficulty band from the prompt ledger.

A group is a domain (the `domain` column) or a band of the pass rate that the prompt ledger
(`prompt_stats`) holds for the dataset's prompts under one model key (default bands
[0, 0.1), [0.1, 0.9), [0.9, 1]: too hard, learnable, solved; the middle is the band that
open-r1 and Bae et al. 2025 keep for RL). Target shares default to equal shares over the
groups the dataset has (and any group named in the targets); a group's deficit is
target share x (rows + n) - rows, and the n new examples are allocated to the groups in
proportion to their positive deficits by largest remainders, ties broken by name, so the
plan is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise

import polars as pl

from curate.catalog.ledger import match_key
from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace, query_frame
from curate.errors import BadInput, BadUsage

DEFAULT_BANDS = (0.0, 0.1, 0.9, 1.0)


@dataclass
class Group:
    name: str
    rows: int
    target_share: float
    deficit: float = 0.0
    allocated: int = 0
    lo: float | None = None  # difficulty bands: pass-rate range [lo, hi)
    hi: float | None = None


@dataclass
class GapPlan:
    by: str  # domain | difficulty
    total_rows: int
    groups: list[Group]
    model_key: str | None = None
    unprofiled: int = 0  # rows outside every group (no domain, or no ledger stats)
    notes: list[str] = field(default_factory=list)
    rates: pl.DataFrame | None = field(default=None, repr=False, compare=False)  # difficulty: (id, pass_rate)

    def as_dict(self) -> dict:
        return {"by": self.by, "total_rows": self.total_rows, "model_key": self.model_key,
                "unprofiled": self.unprofiled,
                "groups": [{"name": g.name, "rows": g.rows, "target_share": round(g.target_share, 6),
                            "deficit": round(g.deficit, 3), "allocated": g.allocated,
                            **({"band": [g.lo, g.hi]} if g.lo is not None else {})} for g in self.groups]}


def band_name(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}"


def parse_bands(edges: str | tuple[float, ...] | None) -> tuple[float, ...]:
    if edges is None:
        return DEFAULT_BANDS
    if isinstance(edges, str):
        text = edges
        try:
            if "-" in text:  # LO-HI per band, as `curate curriculum --bands` takes them: adjacent bands
                ranges = [tuple(float(v) for v in part.split("-")) for part in text.split(",") if part.strip()]
                if any(len(r) != 2 for r in ranges) or any(a[1] != b[0] for a, b in zip(ranges, ranges[1:])):
                    raise BadUsage(f"--bands {text!r}: LO-HI bands must be adjacent, lowest first, "
                                   "e.g. 0-0.1,0.1-0.9,0.9-1")
                edges = tuple([r[0] for r in ranges] + [ranges[-1][1]]) if ranges else ()
            else:
                edges = tuple(float(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise BadUsage(f"--bands {text!r}: give comma-separated pass rates, e.g. 0,0.1,0.9,1 "
                           "(or LO-HI bands: 0-0.1,0.1-0.9,0.9-1)") from None
    if len(edges) < 2 or list(edges) != sorted(set(edges)) or edges[0] < 0 or edges[-1] > 1:
        raise BadUsage(f"--bands {edges}: need at least two increasing pass rates within [0, 1]",
                       hint="e.g. --bands 0,0.1,0.9,1")
    return tuple(edges)


def _in_band(lo: float, hi: float, last: bool) -> pl.Expr:
    """[lo, hi), or [lo, hi] for the last band."""
    return (pl.col("pass_rate") >= lo) & ((pl.col("pass_rate") <= hi) if last else (pl.col("pass_rate") < hi))


def domain_counts(version: DatasetVersion) -> tuple[dict[str, int], int]:
    frame = version.scan().group_by("domain").agg(pl.len().alias("n")).collect()
    counts = {d: int(n) for d, n in frame.iter_rows() if d is not None and str(d).strip()}
    missing = int(frame.filter(pl.col("domain").is_null() | (pl.col("domain").str.strip_chars() == ""))["n"].sum())
    return counts, missing


def pass_rates(ws: Workspace, version: DatasetVersion, model_key: str | None) -> tuple[pl.DataFrame, str | None]:
    """(id, pass_rate) for the version's prompts that the ledger has attempts for, and the model key used."""
    ids = version.scan().select("id").collect()
    with ws.catalog() as con:
        con.register("_ids", ids.to_arrow())
        if model_key is None:  # the key with the most attempted prompts of this dataset
            best = con.execute("SELECT model_key, count(*) AS n FROM prompt_stats JOIN _ids ON prompt_id = id "
                               "WHERE attempts > 0 GROUP BY model_key ORDER BY n DESC, model_key LIMIT 1").fetchall()
            model_key = best[0][0] if best else None
        else:  # a policy's key stands for its one KEY#REWARD
            keys = con.execute("SELECT DISTINCT model_key FROM prompt_stats JOIN _ids ON prompt_id = id").fetchall()
            model_key = match_key([k for (k,) in keys], model_key)
        frame = (query_frame(con, "SELECT prompt_id AS id, successes / attempts AS pass_rate FROM prompt_stats "
                                  "JOIN _ids ON prompt_id = id WHERE attempts > 0 AND model_key = ?", [model_key])
                 if model_key else pl.DataFrame(schema={"id": pl.String, "pass_rate": pl.Float64}))
        con.unregister("_ids")
    return frame, model_key


def allocate(groups: list[Group], total_rows: int, n: int) -> None:
    """Deficits and a largest-remainder allocation of `n` new rows (in place)."""
    for group in groups:
        group.deficit = max(0.0, group.target_share * (total_rows + n) - group.rows)
    need = sum(g.deficit for g in groups)
    if need <= 0:
        return
    quotas = [n * g.deficit / need for g in groups]
    for group, quota in zip(groups, quotas):
        group.allocated = math.floor(quota)
    left = n - sum(g.allocated for g in groups)
    order = sorted(range(len(groups)), key=lambda i: (-(quotas[i] - math.floor(quotas[i])), groups[i].name))
    for i in order[:left]:
        groups[i].allocated += 1


def _shares(names: list[str], targets: dict[str, float]) -> dict[str, float]:
    weights = {name: float(targets.get(name, 0.0 if targets else 1.0)) for name in names}
    if any(w < 0 for w in weights.values()):
        raise BadUsage("--weights must not be negative")
    total = sum(weights.values())
    if total <= 0:
        raise BadUsage("--weights gives every group weight 0", hint="give at least one group a positive weight")
    return {name: w / total for name, w in weights.items()}


def plan(ws: Workspace, version: DatasetVersion, by: str, n: int, targets: dict[str, float] | None = None,
         bands: tuple[float, ...] = DEFAULT_BANDS, model_key: str | None = None) -> GapPlan:
    targets = dict(targets or {})
    if n < 1:
        raise BadUsage(f"--count must be at least 1, not {n}")
    if by == "domain":
        counts, missing = domain_counts(version)
        if not counts and not targets:
            raise BadInput(f"{version.ref} has no domain values to find gaps in",
                           hint="ingest it with --domain-field COLUMN, name domains with --weights DOMAIN=WEIGHT, "
                                "or use --by difficulty after `curate rollouts`")
        names = sorted(set(counts) | set(targets))
        shares = _shares(names, targets)
        groups = [Group(name, counts.get(name, 0), shares[name]) for name in names]
        result = GapPlan("domain", sum(counts.values()), groups, unprofiled=missing)
    elif by == "difficulty":
        names = [band_name(lo, hi) for lo, hi in pairwise(bands)]
        unknown = sorted(set(targets) - set(names))
        if unknown:
            raise BadUsage(f"--weights {', '.join(unknown)}: not a band", hint="bands: " + ", ".join(names))
        rates, key = pass_rates(ws, version, model_key)
        if rates.height == 0:
            raise BadInput(f"the prompt ledger has no attempts for the prompts of {version.ref}"
                           + (f" under model key {model_key}" if model_key else ""),
                           hint="fill it first: `curate synth rejection` or `curate rollouts`; "
                                "or use --by domain")
        shares = _shares(names, targets)
        groups = []
        for index, (lo, hi) in enumerate(pairwise(bands)):
            name = band_name(lo, hi)
            inside = _in_band(lo, hi, index == len(bands) - 2)
            groups.append(Group(name, rates.filter(inside).height, shares[name], lo=lo, hi=hi))
        result = GapPlan("difficulty", rates.height, groups, model_key=key, unprofiled=version.rows - rates.height,
                         rates=rates)
    else:
        raise BadUsage(f"--by {by!r}: use domain or difficulty")
    allocate(result.groups, result.total_rows, n)  # shares sum to 1 and n > 0: some group always has a deficit
    return result


def group_examples(ws: Workspace, version: DatasetVersion, result: GapPlan, group: Group) -> pl.LazyFrame:
    """The group's rows of the version (id, prompt, response, answer, domain)."""
    scan = version.scan().select("id", "prompt", "response", "answer", "domain")
    if result.by == "domain":
        return scan.filter(pl.col("domain") == group.name)
    rates = result.rates if result.rates is not None else pass_rates(ws, version, result.model_key)[0]
    inside = _in_band(group.lo, group.hi, group.hi == result.groups[-1].hi)
    return scan.join(rates.filter(inside).lazy(), on="id", how="inner").select("id", "prompt", "response", "answer",
                                                                                "domain")
