"""Export a dataset version to Parquet, JSON lines or a `datasets` folder.

`columns` picks the layout:
- "canonical": id, prompt, response, answer, tests, domain and meta (meta as a JSON object in JSONL);
- "prompt-completion": TRL's SFT layout (`prompt`, `completion`; conversational when prompts are messages);
- "messages": TRL's conversational layout (`messages`, with the response as the last assistant turn);
- "prompt": for GRPO trainers (TRL, verl): `prompt` plus the reward columns `answer` and `tests`.
The two SFT layouts need a response on every row: TRL's SFTTrainer fails on a null completion.
Rows without one (null or blank) are refused with their count, or left out with `allow_empty`.
DuckDB streams the shards to the output, so memory does not grow with the dataset.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from curate.catalog.versions import DatasetVersion
from curate.errors import BadInput, BadUsage

FORMATS = ("parquet", "jsonl", "hf")
LAYOUTS = ("canonical", "prompt-completion", "messages", "prompt")
SFT_LAYOUTS = ("prompt-completion", "messages")
HAS_RESPONSE = r"NOT regexp_full_match(coalesce(response, ''), '\s*')"  # not null and not blank


@dataclass
class ExportReport:
    path: Path
    format: str
    columns: str
    rows: int
    dropped_empty: int = 0  # rows without a response left out of an SFT layout (allow_empty)


def sql_string(text: str) -> str:
    """A SQL string literal (paths go into COPY statements, which take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def infer_format(to: Path) -> str:
    suffix = to.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix == "":
        return "hf"
    raise BadUsage(f"cannot tell the export format from {to.name!r}",
                   hint="end the name with .parquet or .jsonl, give a folder name for a datasets folder, or pass --format")


def _source_sql(version: DatasetVersion) -> str:
    files = ", ".join(sql_string(f.as_posix()) for f in version.files())
    return f"read_parquet([{files}])"


def _has_entry_point(source: str) -> bool:
    """Whether rows carry HumanEval's `entry_point` in meta: the code reward needs it beside the tests
    (`check(entry_point)`), so a GRPO export hands it to the trainer's reward functions as a column."""
    found = duckdb.sql(f"SELECT 1 FROM {source} WHERE json_extract_string(meta, '$.entry_point') IS NOT NULL "
                       "LIMIT 1").fetchall()
    return bool(found)


def _select_sql(version: DatasetVersion, layout: str, json_meta: bool = True) -> str:
    source = _source_sql(version)
    if layout in SFT_LAYOUTS:
        source = f"(SELECT * FROM {source} WHERE {HAS_RESPONSE})"
    messages = version.prompt_type == "messages"
    reply = "{'role': 'assistant', 'content': response}"
    as_messages = "prompt" if messages else "[{'role': 'user', 'content': prompt}]"
    if layout == "canonical":
        return f"SELECT * REPLACE (CAST(meta AS JSON) AS meta) FROM {source}" if json_meta else f"SELECT * FROM {source}"
    if layout == "prompt-completion":
        completion = f"CASE WHEN response IS NULL THEN NULL ELSE [{reply}] END" if messages else "response"
        return f"SELECT id, prompt, {completion} AS completion, answer, tests FROM {source}"
    if layout == "messages":
        return (f"SELECT id, CASE WHEN response IS NULL THEN {as_messages} "
                f"ELSE list_append({as_messages}, {reply}) END AS messages, answer, tests FROM {source}")
    if layout == "prompt":
        entry = ", json_extract_string(meta, '$.entry_point') AS entry_point" if _has_entry_point(source) else ""
        return f"SELECT id, prompt, answer, tests, domain{entry} FROM {source}"
    raise BadUsage(f"unknown column layout {layout!r}", hint="layouts: " + ", ".join(LAYOUTS))


def export_version(
    version: DatasetVersion,
    to: str | os.PathLike,
    *,
    format: str | None = None,
    columns: str = "canonical",
    overwrite: bool = False,
    allow_empty: bool = False,
) -> ExportReport:
    """Write `version` to `to`; the output appears whole or not at all.

    SFT layouts refuse rows without a response unless `allow_empty`, which leaves them out."""
    target = Path(to).expanduser()
    fmt = format or infer_format(target)
    if fmt not in FORMATS:
        raise BadUsage(f"unknown export format {fmt!r}", hint="formats: " + ", ".join(FORMATS))
    if target.exists() and not overwrite:
        raise BadUsage(f"{target} already exists", hint="choose another path or pass --overwrite")
    if not version.files():
        raise BadUsage(f"{version.ref} has no rows to export")
    empty = _rows_without_response(version) if columns in SFT_LAYOUTS else 0
    if empty and not allow_empty:
        raise BadInput(
            f"{version.ref}: {empty:,} of {version.rows:,} rows have no response, and the {columns} layout is for "
            "SFT, whose trainers need one on every row (TRL's SFTTrainer fails on a null completion)",
            hint="for RL prompts export --columns prompt; to train on the others pass --allow-empty (those rows are "
                 "left out and counted); or ingest again with --map response=COLUMN")
    if empty and empty == version.rows:
        raise BadInput(f"{version.ref}: no row has a response, so the {columns} layout would be empty",
                       hint="for RL prompts export --columns prompt, or ingest again with --map response=COLUMN")
    sql = _select_sql(version, columns, json_meta=fmt == "jsonl")
    con = duckdb.connect()
    try:
        rows = write_query(con, sql, target, fmt, overwrite)
    finally:
        con.close()
    return ExportReport(target, fmt, columns, rows, empty)


def write_query(con: duckdb.DuckDBPyConnection, sql: str, target: Path, fmt: str, overwrite: bool,
                json_array: bool = False) -> int:
    """Stream `sql` to `target` (parquet, jsonl or an hf folder) through a partial file renamed into
    place, so the output appears whole or not at all; returns the rows written."""
    if target.exists() and not overwrite:
        raise BadUsage(f"{target} already exists", hint="choose another path or pass --overwrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        if fmt == "parquet":
            con.execute(f"COPY ({sql}) TO {sql_string(partial.as_posix())} (FORMAT PARQUET, COMPRESSION ZSTD)")
        elif fmt == "jsonl":
            array = ", ARRAY true" if json_array else ""
            con.execute(f"COPY ({sql}) TO {sql_string(partial.as_posix())} (FORMAT JSON{array})")
        else:
            _write_hf_folder(con, sql, partial)
        (rows,) = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True) if partial.is_dir() else partial.unlink(missing_ok=True)
        raise
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    os.rename(partial, target)
    return rows


def _rows_without_response(version: DatasetVersion) -> int:
    con = duckdb.connect()
    try:
        (count,) = con.execute(f"SELECT count(*) FROM {_source_sql(version)} WHERE NOT {HAS_RESPONSE}").fetchone()
    finally:
        con.close()
    return int(count)


def _write_hf_folder(con: duckdb.DuckDBPyConnection, sql: str, folder: Path) -> None:
    """A `datasets.save_to_disk` folder, built through a temporary Parquet file."""
    import datasets

    scratch = folder.with_name(folder.name + ".scratch")
    scratch.mkdir()
    try:
        parquet = scratch / "data.parquet"
        con.execute(f"COPY ({sql}) TO {sql_string(parquet.as_posix())} (FORMAT PARQUET)")
        dataset = datasets.Dataset.from_parquet(str(parquet), cache_dir=str(scratch / "cache"))
        dataset.save_to_disk(str(folder))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
