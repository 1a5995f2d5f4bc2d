"""Commit a selection as a new dataset version.

The new version holds the source rows whose ids were kept, in the selection's order, plus
any per-example columns the selectors produced (e.g. `token_mask`), which replace source
columns of the same name. Rows are read from the source shards, joined with the kept ids and
sorted by rank inside DuckDB (which spills to disk past memory), streamed into a
`ShardWriter`, and committed with `commit_version`: shards, lineage, drops and the
`selections` row appear in one transaction, or not at all.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import duckdb
import polars as pl

from curate.catalog.versions import DatasetVersion, Lineage, ShardWriter, commit_version
from curate.catalog.workspace import Workspace
from curate.errors import BadInput

BATCH_ROWS = 50_000


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def commit_selection(
    ws: Workspace,
    source: DatasetVersion,
    name: str,
    kept: pl.DataFrame,
    steps: Sequence[Lineage],
    *,
    strategy: str,
    budget: int | None,
    params: dict[str, Any],
    drops: pl.DataFrame | None = None,
    extra: pl.DataFrame | None = None,
    step_scores: pl.DataFrame | None = None,
) -> DatasetVersion:
    """Write the kept rows of `source` (kept: id, rank) as the next version of `name`.

    `step_scores` (step, id, value, kept) goes to the `step_scores` table in the same transaction.
    """
    if kept.height == 0:
        raise BadInput(f"the selection from {source.ref} kept no rows, so there is nothing to write",
                       hint="loosen the strategy's parameters or check its drop reasons")
    kept = kept.select(pl.col("id").cast(pl.String), pl.col("rank").cast(pl.Int64))
    extra_columns = [c for c in (extra.columns if extra is not None else []) if c != "id"]
    source_columns = [c for c in source.columns if c not in extra_columns]
    select = ", ".join(f"s.{_quote(c)}" for c in source_columns)
    if extra_columns:
        select += ", " + ", ".join(f"e.{_quote(c)}" for c in extra_columns)
    with ws.staging("select") as folder:
        con = duckdb.connect()
        try:
            con.execute(f"SET temp_directory = '{(folder / '.spill').as_posix()}'")
            con.execute("SET preserve_insertion_order = true")
            con.register("_kept", kept.to_arrow())
            join = ""
            if extra_columns:
                con.register("_extra", extra.to_arrow())
                join = "LEFT JOIN _extra e ON e.id = s.id"
            files = [str(f) for f in source.files()]
            sql = (f"SELECT {select} FROM read_parquet(?) s JOIN _kept k ON k.id = s.id {join} "
                   f"ORDER BY k.rank")
            reader = con.sql(sql, params=[files]).to_arrow_reader(BATCH_ROWS)
            writer = ShardWriter(folder)
            for batch in reader:
                writer.write(pl.from_arrow(batch))
            staged = writer.close()
        finally:
            con.close()
            shutil.rmtree(folder / ".spill", ignore_errors=True)  # not part of the version
        if staged.rows != kept.height:
            raise BadInput(f"{kept.height - staged.rows} selected ids are not rows of {source.ref}",
                           hint="a selection must come from the dataset version it names")

        def record(con: duckdb.DuckDBPyConnection, version: int) -> None:
            con.execute("INSERT INTO selections VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [name, version, source.ref, strategy, budget,
                         json.dumps(params, sort_keys=True, default=str), _now()])
            if step_scores is not None and step_scores.height:
                frame = step_scores.select(
                    pl.lit(name).alias("name"), pl.lit(version, pl.Int32).alias("version"),
                    pl.col("step").cast(pl.Int32), pl.col("id").cast(pl.String), pl.col("value").cast(pl.Float64),
                    pl.col("kept").cast(pl.Boolean))
                con.register("_step_scores", frame.to_arrow())
                con.execute("INSERT INTO step_scores SELECT * FROM _step_scores")
                con.unregister("_step_scores")

        return commit_version(ws, name, staged, steps, prompt_type=source.prompt_type, license=source.license,
                              drops=drops, on_commit=record)


def selection_of(ws: Workspace, version: DatasetVersion) -> dict[str, Any] | None:
    """The `selections` row that made `version`, if a selection made it."""
    with ws.catalog() as con:
        cur = con.execute("SELECT * FROM selections WHERE name = ? AND version = ?", [version.name, version.version])
        row = cur.fetchone()
        columns = [d[0] for d in cur.description]
    if row is None:
        return None
    out = dict(zip(columns, row))
    out["params"] = json.loads(out["params"])
    return out
