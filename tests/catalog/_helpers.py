"""Small helpers shared by the catalog tests (not a test module)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curate.catalog.ingest import IngestOptions, IngestReport, ingest
from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace
from tests.conftest import write_jsonl

__all__ = [
    "catalog_state",
    "drops_of",
    "ingest_file",
    "ingest_rows",
    "metas_of",
    "rows_of",
    "version_dirs",
    "write_jsonl",
    "write_lines",
]


def ingest_file(ws: Workspace, path: Path, name: str = "ds", **options: Any) -> IngestReport:
    return ingest(ws, str(path), IngestOptions(name=name, **options))


def ingest_rows(ws: Workspace, folder: Path, rows: list[dict], name: str = "ds", filename: str | None = None,
                **options: Any) -> IngestReport:
    path = write_jsonl(folder / (filename or f"{name}.jsonl"), rows)
    return ingest_file(ws, path, name, **options)


def write_lines(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_bytes("".join(line + newline for line in lines).encode("utf-8"))
    return path


def rows_of(version: DatasetVersion) -> list[dict]:
    return version.scan().collect().to_dicts()


def metas_of(version: DatasetVersion) -> list[dict]:
    return [json.loads(row["meta"]) for row in rows_of(version)]


def catalog_state(ws: Workspace) -> dict[str, list[tuple]]:
    """Every row of the tables an ingest writes, in a stable order."""
    with ws.catalog() as con:
        return {table: sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
                for table in ("datasets", "lineage", "drops")}


def version_dirs(ws: Workspace) -> list[str]:
    """Everything under shards/ except the staging root and what is inside it, relative to shards/."""
    out = []
    for path in sorted(ws.shards_dir.rglob("*")):
        rel = path.relative_to(ws.shards_dir)
        if rel.parts[0] != ".staging":
            out.append(rel.as_posix())
    return out


def drops_of(ws: Workspace, version: DatasetVersion) -> list[tuple[str, str, str]]:
    """(id, reason, detail) of the version's drop rows, ordered by detail."""
    with ws.catalog() as con:
        rows = con.execute("SELECT id, reason, detail FROM drops WHERE name = ? AND version = ?",
                           [version.name, version.version]).fetchall()
    return sorted(rows, key=lambda r: (r[2], r[0]))
