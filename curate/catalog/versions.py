"""Immutable dataset versions: staged shards, atomic commit, lookup and reading.

A version is born in a staging folder. `commit_version` renames the folder to
`shards/NAME/vN` and inserts the catalog rows in one transaction, under the catalog
lock. A crash before the rename leaves a dead staging folder; a crash between the
rename and the commit leaves a version folder the catalog does not know. Both are
invisible and `Workspace.collect_garbage` removes them on the next commit.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import polars_hash  # noqa: F401  (nchash namespace)
import pyarrow.parquet as pq
import xxhash

from curate import __version__
from curate.catalog.workspace import Workspace
from curate.errors import BadInput, BadUsage, NotFound

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
REF_PATTERN = re.compile(r"^(?P<name>[^@]+)(?:@v?(?P<version>\d+|latest))?$")


@dataclass(frozen=True)
class DatasetRef:
    name: str
    version: int | None = None  # None: the latest

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@v{self.version}"


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise BadUsage(
            f"invalid dataset name {name!r}",
            hint="use letters, digits, '_', '.' or '-' (at most 100), starting with a letter or digit",
        )
    return name


MAX_VERSION = 2 ** 31 - 1  # the catalog's version column is an INTEGER


def parse_ref(text: str) -> DatasetRef:
    """`name`, `name@latest`, `name@v3` or `name@3`."""
    match = REF_PATTERN.fullmatch(text.strip())
    if not match:
        raise BadUsage(f"invalid dataset reference {text!r}", hint="write NAME or NAME@vN, e.g. gsm8k@v2")
    version = match["version"]
    if version not in (None, "latest") and int(version) > MAX_VERSION:
        raise BadUsage(f"invalid dataset reference {text!r}: no version is above v{MAX_VERSION}",
                       hint="write NAME or NAME@vN, e.g. gsm8k@v2 (curate ls NAME lists the versions)")
    return DatasetRef(check_name(match["name"]), None if version in (None, "latest") else int(version))


@dataclass(frozen=True)
class DatasetVersion:
    """One row of the `datasets` table, with the shard folder made absolute."""

    name: str
    version: int
    path: Path
    rows: int
    shards: int
    prompt_type: str
    columns: dict[str, str]
    content_hash: str
    license: str | None
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def files(self) -> list[Path]:
        return sorted(self.path.glob("*.parquet"))

    def scan(self) -> pl.LazyFrame:
        files = self.files()
        if not files:
            return pl.LazyFrame(schema={c: pl.String for c in self.columns})
        return pl.scan_parquet(files)

    def iter_batches(self, batch_size: int = 50_000, columns: Sequence[str] | None = None) -> Iterator[pl.DataFrame]:
        """Stream the rows in order, `batch_size` at a time, without loading the version."""
        for file in self.files():
            for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_size, columns=columns):
                yield pl.from_arrow(batch)


@dataclass
class Lineage:
    """One step of how a version was made."""

    op: str
    inputs: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    strategy: str | None = None
    model_id: str | None = None
    model_hash: str | None = None
    seed: int | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    drop_counts: dict[str, int] = field(default_factory=dict)
    duration_s: float | None = None
    code_version: str = __version__


@dataclass(frozen=True)
class StagedShards:
    folder: Path
    rows: int
    shards: int
    content_hash: str
    schema: dict[str, str]


NULL_HASH = 0x9E3779B97F4A7C15  # stands for a null cell; a string hashing to it is a 2^-64 chance


def row_hashes(frame: pl.DataFrame) -> np.ndarray:
    """xxh3-64 of every cell, [rows, columns] in row-major order: the content hash sees all the data.

    Text columns are hashed as they are, other columns as their JSON, a null as NULL_HASH.
    Rows come out contiguous, so the bytes do not depend on how the rows were chunked.
    """
    cells = []
    for name, dtype in frame.schema.items():
        value = pl.col(name) if dtype == pl.String else pl.struct(name).struct.json_encode()
        cells.append(value.nchash.xxh3_64().fill_null(NULL_HASH).alias(name))
    return np.ascontiguousarray(frame.select(cells).to_numpy(), dtype=np.uint64)


class ShardWriter:
    """Writes canonical frames into Parquet shards of at most `rows_per_shard` rows.

    The first frame fixes the schema; later frames are cast to it so every shard of a
    version has the same columns and types.
    """

    def __init__(self, folder: Path, rows_per_shard: int = 250_000):
        self.folder = folder
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-shard-writer")
        self._inflight: Future | None = None
        self.rows_per_shard = rows_per_shard
        self.schema: pl.Schema | None = None
        self._pending: list[pl.DataFrame] = []
        self._pending_rows = 0
        self._rows = 0
        self._shards = 0
        self._hasher = xxhash.xxh3_128()

    def write(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        if self.schema is None:
            self.schema = frame.schema
        elif frame.schema != self.schema:
            frame = self._conform(frame)
        self._hasher.update(row_hashes(frame).tobytes())
        self._pending.append(frame)
        self._pending_rows += frame.height
        while self._pending_rows >= self.rows_per_shard:
            merged = pl.concat(self._pending)
            self._flush(merged.head(self.rows_per_shard))
            rest = merged.slice(self.rows_per_shard)
            self._pending, self._pending_rows = ([rest], rest.height) if rest.height else ([], 0)

    def _conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        assert self.schema is not None
        if set(frame.columns) != set(self.schema.names()):
            raise BadInput(
                f"rows change shape mid-file: columns {sorted(frame.columns)} after {sorted(self.schema.names())}"
            )
        try:
            return frame.select(self.schema.names()).cast(dict(self.schema))
        except pl.exceptions.PolarsError as exc:
            raise BadInput(f"rows change type mid-file: {exc}") from exc

    def _flush(self, frame: pl.DataFrame) -> None:
        """Write one shard in the background; at most one write is in flight."""
        path = self.folder / f"part-{self._shards:05d}.parquet"
        self._wait()
        self._inflight = self._pool.submit(
            frame.write_parquet, path, compression="snappy", row_group_size=50_000  # docs/decisions.md
        )
        self._rows += frame.height
        self._shards += 1

    def _wait(self) -> None:
        if self._inflight is not None:
            self._inflight.result()
            self._inflight = None

    def close(self) -> StagedShards:
        if self._pending:
            self._flush(pl.concat(self._pending))
            self._pending, self._pending_rows = [], 0
        self._wait()
        self._pool.shutdown()
        schema = {k: str(v) for k, v in (self.schema or {}).items()}
        return StagedShards(self.folder, self._rows, self._shards, self._hasher.hexdigest(), schema)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def commit_version(
    ws: Workspace,
    name: str,
    staged: StagedShards,
    steps: Sequence[Lineage],
    *,
    prompt_type: str,
    license: str | None = None,
    drops: pl.DataFrame | None = None,
    on_commit: Callable[[Any, int], None] | None = None,
) -> DatasetVersion:
    """Make `staged` the next version of `name`, atomically.

    `drops` has columns step, id, reason, detail: one row per example an operation dropped.
    `on_commit(con, version)` runs inside the same transaction, for rows other tables keep
    about the new version (e.g. `selections`).
    """
    check_name(name)
    with ws.catalog() as con:
        ws.collect_garbage(con)
        con.begin()
        try:
            (latest,) = con.execute("SELECT max(version) FROM datasets WHERE name = ?", [name]).fetchone()
            version = (latest or 0) + 1
            rel = f"shards/{name}/v{version}"
            final = ws.root / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged.folder, final)
            created = _now()
            con.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [name, version, rel, staged.rows, staged.shards, prompt_type, json.dumps(staged.schema),
                 staged.content_hash, license, created],
            )
            for index, step in enumerate(steps):
                _insert_lineage(con, name, version, index, step, created)
            if drops is not None and drops.height:
                frame = drops.select(
                    pl.lit(name).alias("name"), pl.lit(version, pl.Int32).alias("version"),
                    pl.col("step").cast(pl.Int32), "id", "reason", pl.col("detail").cast(pl.String),
                )
                con.register("_drops", frame.to_arrow())
                con.execute("INSERT INTO drops SELECT * FROM _drops")
                con.unregister("_drops")
            if on_commit is not None:
                on_commit(con, version)
            con.commit()
        except BaseException:
            con.rollback()
            if "final" in locals() and final.exists() and not staged.folder.exists():
                os.rename(final, staged.folder)
            raise
        (final / ".writer.lock").unlink(missing_ok=True)
    return resolve(ws, DatasetRef(name, version))


def _insert_lineage(con, name: str, version: int, index: int, step: Lineage, created: datetime) -> None:
    row = asdict(step)
    con.execute(
        "INSERT INTO lineage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [name, version, index, row["op"], json.dumps(row["inputs"]), row["strategy"],
         json.dumps(row["params"], default=str, sort_keys=True), row["model_id"], row["model_hash"],
         row["code_version"], row["seed"], row["rows_in"], row["rows_out"],
         json.dumps(row["drop_counts"], sort_keys=True), created, row["duration_s"]],
    )


_COLUMNS = "name, version, path, rows, shards, prompt_type, columns, content_hash, license, created_at"


def _version_from_row(ws: Workspace, row: tuple) -> DatasetVersion:
    name, version, path, rows, shards, prompt_type, columns, content_hash, license, created = row
    return DatasetVersion(name, version, ws.root / path, rows, shards, prompt_type, json.loads(columns),
                          content_hash, license, created)


def resolve(ws: Workspace, ref: str | DatasetRef) -> DatasetVersion:
    """The version `ref` names; a clear `NotFound` listing what exists otherwise."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    with ws.catalog() as con:
        if ref.version is None:
            row = con.execute(
                f"SELECT {_COLUMNS} FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1", [ref.name]
            ).fetchone()
        else:
            row = con.execute(
                f"SELECT {_COLUMNS} FROM datasets WHERE name = ? AND version = ?", [ref.name, ref.version]
            ).fetchone()
        if row is None:
            versions = [v for (v,) in con.execute(
                "SELECT version FROM datasets WHERE name = ? ORDER BY version", [ref.name]).fetchall()]
            names = [n for (n,) in con.execute("SELECT DISTINCT name FROM datasets ORDER BY name").fetchall()]
    if row is not None:
        return _version_from_row(ws, row)
    if versions:
        raise NotFound(f"dataset {ref.name} has no version {ref.version}",
                       hint="versions: " + ", ".join(f"v{v}" for v in versions))
    raise NotFound(f"no dataset named {ref.name!r} in workspace {ws.root}",
                   hint=("datasets: " + ", ".join(names)) if names else "ingest one with `curate ingest FILE --out NAME`")


def list_versions(ws: Workspace, name: str | None = None) -> list[DatasetVersion]:
    sql = f"SELECT {_COLUMNS} FROM datasets"
    params: list[Any] = []
    if name:
        sql += " WHERE name = ?"
        params.append(name)
    with ws.catalog() as con:
        rows = con.execute(sql + " ORDER BY name, version", params).fetchall()
    return [_version_from_row(ws, row) for row in rows]


def lineage_of(ws: Workspace, version: DatasetVersion) -> list[dict[str, Any]]:
    with ws.catalog() as con:
        cur = con.execute(
            "SELECT * FROM lineage WHERE name = ? AND version = ? ORDER BY step", [version.name, version.version]
        )
        cols = [d[0] for d in cur.description]
        rows = cur.fetchall()
    out = []
    for row in rows:
        item = dict(zip(cols, row))
        for key in ("inputs", "params", "drop_counts"):
            item[key] = json.loads(item[key])
        out.append(item)
    return out


def elapsed_since(start: float) -> float:
    return round(time.perf_counter() - start, 3)
