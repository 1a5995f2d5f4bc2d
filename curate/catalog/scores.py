"""Stored scores: one value per (dataset version, example, scorer key), reused across runs.

A scorer key is `scorer:model-hash:params-hash` (the model part is `-` for scorers that use
no model), so a score is reused exactly when the dataset version, the scorer, the model and
the parameters that shape the score all match. Values that are per token (token cleaning)
go to Parquet files under `WS/scores/<key>/<name>@v<version>/`, one file per store call,
written to a staging folder and renamed into place before the catalog rows are inserted.
Storing is idempotent: rows already present for a (dataset, id, key) are skipped.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
import xxhash

from curate.catalog.workspace import Workspace, query_frame


def params_hash(params: dict[str, Any]) -> str:
    return xxhash.xxh3_64_hexdigest(json.dumps(params, sort_keys=True, default=str).encode())


def scorer_key(scorer: str, model_hash: str | None, params: dict[str, Any]) -> str:
    """The cache key of a scorer run: scorer + model hash + params hash."""
    return f"{scorer}:{(model_hash or '-')[:16]}:{params_hash(params)}"


def _folder(ws: Workspace, key: str, dataset: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.@\-]", "_", key)
    return ws.root / "scores" / safe / dataset


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def store_scores(
    ws: Workspace,
    dataset: str,
    key: str,
    scorer: str,
    model_hash: str | None,
    params: dict[str, Any],
    values: pl.DataFrame,
    token_values: pl.DataFrame | None = None,
) -> int:
    """Store `values` (id, value) and optionally per-token `token_values` (id, values); returns rows added."""
    values = values.select(pl.col("id").cast(pl.String), pl.col("value").cast(pl.Float64)).unique("id", keep="first")
    staged: Path | None = None
    if token_values is not None and token_values.height:
        folder = _folder(ws, key, dataset)
        folder.mkdir(parents=True, exist_ok=True)
        staged = folder / f".part-{uuid.uuid4().hex}.parquet"
        token_values.select(pl.col("id").cast(pl.String), pl.col("values").cast(pl.List(pl.Float32))).write_parquet(staged)
    with ws.transaction() as con:
        con.execute("INSERT OR IGNORE INTO scorers VALUES (?, ?, ?, ?, ?)",
                    [key, scorer, model_hash, json.dumps(params, sort_keys=True, default=str), _now()])
        con.register("_new_scores", values.to_arrow())
        count = "SELECT count(*) FROM scores WHERE dataset = ? AND scorer_key = ?"
        before = con.execute(count, [dataset, key]).fetchall()[0][0]
        con.execute(
            "INSERT INTO scores SELECT ?, n.id, ?, n.value FROM _new_scores n "
            "WHERE n.id NOT IN (SELECT id FROM scores WHERE dataset = ? AND scorer_key = ?)",
            [dataset, key, dataset, key])
        after = con.execute(count, [dataset, key]).fetchall()[0][0]
        con.unregister("_new_scores")
        if staged is not None:
            os.rename(staged, staged.with_name(staged.name[1:]))  # visible once the rows commit with it
    return after - before


def load_scores(ws: Workspace, dataset: str, key: str) -> pl.DataFrame:
    """id, value of every stored score of `key` on `dataset` (empty when there are none)."""
    with ws.catalog() as con:
        frame = query_frame(con, "SELECT id, value FROM scores WHERE dataset = ? AND scorer_key = ?", [dataset, key])
    if frame.height == 0:
        return pl.DataFrame(schema={"id": pl.String, "value": pl.Float64})
    return frame


def load_token_scores(ws: Workspace, dataset: str, key: str) -> pl.DataFrame:
    """id, values (per-token scores) stored for `key` on `dataset`; the first copy of an id wins."""
    files = sorted(p for p in _folder(ws, key, dataset).glob("part-*.parquet")) if _folder(ws, key, dataset).exists() else []
    if not files:
        return pl.DataFrame(schema={"id": pl.String, "values": pl.List(pl.Float32)})
    return pl.read_parquet(files).unique("id", keep="first", maintain_order=True)


def scorers_of(ws: Workspace, dataset: str) -> pl.DataFrame:
    """The scorer keys stored for a dataset, with their parameters and counts."""
    with ws.catalog() as con:
        return query_frame(con, """
            SELECT s.scorer_key, k.scorer, k.model_hash, k.params, count(*) AS rows,
                   count(*) FILTER (WHERE isnan(s.value) OR s.value IS NULL) AS nan
            FROM scores s JOIN scorers k USING (scorer_key)
            WHERE s.dataset = ? GROUP BY ALL ORDER BY s.scorer_key""", [dataset])
