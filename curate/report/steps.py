"""What each step of a version's lineage did: counts by reason, the score histogram with the cut,
example rows per drop reason beside kept rows, and rows per domain before and after.

Everything is read from the catalog (`lineage`, `drops`, `step_scores`) and the source version's
shards with DuckDB, a query per step; nothing loads a whole dataset into Python rows.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from curate.catalog.versions import DatasetVersion, parse_ref, resolve
from curate.catalog.workspace import Workspace
from curate.errors import CurateError

BINS = 30
TEXT_LIMIT = 600  # characters of a prompt or response kept per example row
# What a missing score means, where it is not an error.
NO_SCORE = {"dedup": "no other row at or above the threshold", "token-clean": "no token could be scored",
            "difficulty": "the kept rows carry their pass rate; dropped rows have none recorded"}
# Parameters that are the strategy's own threshold on its score (drawn as cut lines).
THRESHOLDS = {"dedup": ("threshold",), "ifd": ("max_ifd",)}


def _files(version: DatasetVersion) -> list[str]:
    return [f.as_posix() for f in version.files()]


def _source_of(ws: Workspace, version: DatasetVersion, step: dict[str, Any]) -> DatasetVersion:
    """The version a step read its rows from: its first input when that is a catalog version."""
    for text in step["inputs"][:1]:
        try:
            ref = parse_ref(text)
            if ref.version is not None:
                return resolve(ws, ref)
        except CurateError:
            pass
    return version


def clip(text: Any, limit: int = TEXT_LIMIT) -> str | None:
    """A prompt (text or messages) or a response as display text, clipped."""
    if text is None:
        return None
    if isinstance(text, list):
        text = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in text)
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} chars)"


def _rows(con, version: DatasetVersion, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids or not version.files():
        return {}
    columns = [c for c in ("id", "prompt", "response", "answer", "domain") if c in version.columns]
    frame = con.execute(f"SELECT {', '.join(columns)} FROM read_parquet(?) WHERE list_contains(?, id)",
                        [_files(version), ids]).fetchall()
    out = {}
    for values in frame:
        row = dict(zip(columns, values))
        out[row["id"]] = {k: clip(v) for k, v in row.items()}
    return out


def histogram(values: np.ndarray, kept: np.ndarray, bins: int = BINS, include: list[float] = ()) -> dict[str, Any] | None:
    """Counts of kept and dropped rows per bin over the finite scores (the range stretched to the
    values in `include`, the cuts, so they are drawn where they are); None when there is no score."""
    finite = np.isfinite(values)
    if not finite.any():
        return None
    lo = min([float(values[finite].min()), *include])
    hi = max([float(values[finite].max()), *include])
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    kept_counts, _ = np.histogram(values[finite & kept], bins=edges)
    dropped_counts, _ = np.histogram(values[finite & ~kept], bins=edges)
    return {"edges": [float(e) for e in edges], "kept": kept_counts.tolist(), "dropped": dropped_counts.tolist()}


def cuts_of(strategy: str | None, params: dict[str, Any], values: np.ndarray, kept: np.ndarray) -> list[list]:
    """Where the step cut: its threshold parameters, else the boundary when a threshold separates
    kept from dropped (rank strategies). Set strategies (fisher, diversity) have no single cut."""
    cuts = [[float(params[p]), p] for p in THRESHOLDS.get(strategy or "", ()) if params.get(p) is not None]
    if strategy == "difficulty" and params.get("mode", "band") == "band":
        cuts += [[float(params.get("lo", 0.1)), "lo"], [float(params.get("hi", 0.9)), "hi"]]
    if cuts:
        return cuts
    finite = np.isfinite(values)
    kept_values, dropped_values = values[finite & kept], values[finite & ~kept]
    if len(kept_values) and len(dropped_values):
        if kept_values.min() >= dropped_values.max():
            return [[float(kept_values.min()), "kept ≥"]]
        if kept_values.max() <= dropped_values.min():
            return [[float(kept_values.max()), "kept ≤"]]
    return []


def _scores(con, version: DatasetVersion, index: int, step: dict[str, Any]) -> dict[str, Any] | None:
    found = con.execute("SELECT value, kept FROM step_scores WHERE name = ? AND version = ? AND step = ?",
                        [version.name, version.version, index]).fetchnumpy()
    if len(found["kept"]) == 0:
        return None
    values = np.ma.filled(np.ma.asarray(found["value"], dtype=np.float64), np.nan)  # NULL -> NaN
    kept = np.ma.filled(np.ma.asarray(found["kept"], dtype=bool), False)
    cuts = cuts_of(step.get("strategy"), step.get("params", {}), values, kept)
    hist = histogram(values, kept, include=[c[0] for c in cuts])
    finite = np.isfinite(values)
    return {"rows": int(len(values)), "kept": int(kept.sum()), "no_score": int((~finite).sum()),
            "histogram": hist, "cuts": cuts, "no_score_means": NO_SCORE.get(step.get("strategy") or ""),
            "kept_mean": _mean(values[finite & kept]), "dropped_mean": _mean(values[finite & ~kept])}


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def spread(total: int, count: int) -> list[int]:
    """`count` positions (1-based) spread evenly from the first to the last of `total`."""
    if total <= count:
        return list(range(1, total + 1))
    return sorted({int(round(p)) for p in np.linspace(1, total, count)})


def _drop_examples(con, version: DatasetVersion, source: DatasetVersion, index: int, counts: dict[str, int],
                   count: int) -> dict[str, list[dict[str, Any]]]:
    """`count` drops per reason, spread over the order the step dropped them in (for a ranking step,
    from just below the cut to the worst)."""
    wanted = [[reason, position] for reason, total in counts.items() for position in spread(total, count)]
    if not wanted:
        return {}
    drops = con.execute(
        "SELECT reason, id, detail FROM (SELECT reason, id, detail, row_number() OVER (PARTITION BY reason "
        "ORDER BY rowid) AS n FROM drops WHERE name = ? AND version = ? AND step = ?) "
        "WHERE list_contains(?, reason || ':' || n) ORDER BY reason, n",
        [version.name, version.version, index, [f"{r}:{p}" for r, p in wanted]]).fetchall()
    rows = _rows(con, source, [i for _, i, _ in drops])
    out: dict[str, list[dict[str, Any]]] = {}
    for reason, row_id, detail in drops:
        out.setdefault(reason, []).append({"id": row_id, "detail": detail, **rows.get(row_id, {})})
    return out


def _kept_examples(con, version: DatasetVersion, source: DatasetVersion, index: int, last: bool,
                   count: int) -> list[dict[str, Any]]:
    """Rows that survived the step, spread over their order: the version's own order after the last
    step (best ranked first), the source's order after an earlier one."""
    if last or source is version:
        positions = spread(version.rows, count)
        ids = [r[0] for r in con.execute(
            "SELECT id FROM (SELECT id, row_number() OVER () AS n FROM read_parquet(?)) WHERE list_contains(?, n) "
            "ORDER BY n", [_files(version), positions]).fetchall()]
        rows = _rows(con, version, ids)
    else:
        survivors = con.execute(
            "SELECT s.id FROM read_parquet(?) s ANTI JOIN (SELECT id FROM drops WHERE name = ? AND version = ? "
            "AND step <= ?) d ON d.id = s.id", [_files(source), version.name, version.version, index]).fetchall()
        ids = [survivors[p - 1][0] for p in spread(len(survivors), count)]
        rows = _rows(con, source, ids)
    return [rows[i] for i in ids if i in rows]


def _domains(con, version: DatasetVersion, source: DatasetVersion, steps: int) -> list[dict[str, Any]] | None:
    """Rows per domain entering and leaving each step of a selection (every source row is either kept
    by the last step or dropped by one step, so the drops table tells where each row stopped)."""
    if "domain" not in source.columns or source is version:
        return None
    frame = con.execute(
        "SELECT s.domain, d.step, count(*) FROM read_parquet(?) s LEFT JOIN (SELECT id, min(step) AS step FROM drops "
        "WHERE name = ? AND version = ? GROUP BY id) d ON d.id = s.id GROUP BY ALL",
        [_files(source), version.name, version.version]).fetchall()
    domains = sorted({d for d, _, _ in frame}, key=lambda d: (d is None, str(d)))
    out = []
    for k in range(steps):
        before = {d: 0 for d in domains}
        after = {d: 0 for d in domains}
        for domain, stopped, n in frame:
            if stopped is None or stopped >= k:
                before[domain] += n
            if stopped is None or stopped > k:
                after[domain] += n
        out.append({"domains": ["(none)" if d is None else str(d) for d in domains],
                    "before": [before[d] for d in domains], "after": [after[d] for d in domains]})
    return out


def step_sections(ws: Workspace, version: DatasetVersion, lineage: list[dict[str, Any]],
                  examples: int = 5) -> list[dict[str, Any]]:
    """One entry per lineage step of `version`, in order."""
    sections: list[dict[str, Any]] = []
    if not lineage:
        return sections
    sources = [_source_of(ws, version, step) for step in lineage]
    with ws.catalog() as con:
        domain_flow = _domains(con, version, sources[0], len(lineage)) if lineage[0]["op"] == "select" else None
        for index, (step, source) in enumerate(zip(lineage, sources)):
            params = {k: v for k, v in step["params"].items() if v not in (None, {}, [], "")}
            section = {
                "step": step["step"], "op": step["op"], "strategy": step.get("strategy"), "inputs": step["inputs"],
                "params": json.loads(json.dumps(params, default=str)), "model_id": step.get("model_id"),
                "model_hash": step.get("model_hash"), "seed": step.get("seed"), "rows_in": step.get("rows_in"),
                "rows_out": step.get("rows_out"), "drop_counts": step.get("drop_counts", {}),
                "seconds": step.get("duration_s"),
                "scores": _scores(con, version, step["step"], step),
                "dropped_examples": _drop_examples(con, version, source, step["step"],
                                                   step.get("drop_counts") or {}, examples),
                "kept_examples": _kept_examples(con, version, source, step["step"], index == len(lineage) - 1,
                                                examples),
                "domains": domain_flow[index] if domain_flow else None,
            }
            sections.append(section)
    return sections


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN: a non-finite float becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
