"""`meta`: every source column the mapping did not use, kept verbatim as one JSON object per row.

A parsed frame is columnar: pyarrow gives a nested JSON object one struct type for the whole
block, so a key that one row lacks becomes a null in that row (IFEval's `kwargs` `{}` turned
into 24 null keys). `meta_expr` builds meta from the columns (fast, and exact when no struct
field is null); `verbatim_meta` then rebuilds, from the source text, the meta of every row whose
JSON holds a null struct field, with DuckDB's `json_merge_patch` (RFC 7396) deleting the keys
the mapping used: what is left is the row's own object, as written, explicit nulls included.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import duckdb
import numpy as np
import polars as pl

from curate.catalog.export import sql_string
from curate.catalog.workspace import query_frame

NULL_FIELD = ":null"  # how a null struct field looks in the encoded meta
# An integer beyond 64 bits: parsed as a float (pyarrow; an exponent of 19 or more) or kept as text (a
# column of mixed types). Rows that may hold one get their meta from the source text, which keeps every digit.
BIG_INTEGER = r'[0-9][eE]\+?(?:19|[2-9][0-9]|[0-9]{3})|"-?[0-9]{19,}"'


def meta_value(frame: pl.DataFrame, column: str) -> pl.Expr:
    """A leftover column as it goes into meta; bytes become base64 text (JSON has no bytes)."""
    if frame.schema[column] == pl.Binary:
        return pl.col(column).bin.encode("base64")
    return pl.col(column)


def meta_expr(frame: pl.DataFrame, used: set[str], partial: dict[str, set[str]], meta_column: str | None) -> pl.Expr:
    """The `meta` JSON: every source column the mapping did not use, verbatim.

    A struct column read through `a.b` paths keeps its other fields. When the source already
    has curate's `meta` (an export ingested again), its fields are the base of the new meta.
    """
    items: list[pl.Expr] = []
    for column in frame.columns:
        if column in used:
            continue
        if column in partial:
            dtype = frame.schema[column]
            rest = [f.name for f in dtype.fields if f.name not in partial[column]] if isinstance(dtype, pl.Struct) else []
            if rest:
                items.append(pl.struct([pl.col(column).struct.field(f) for f in rest]).alias(column))
            continue
        items.append(meta_value(frame, column).alias(column))
    if meta_column is not None and meta_column in frame.columns:
        dtype = frame.schema[meta_column]
        if isinstance(dtype, pl.Struct):
            items = [pl.col(meta_column).struct.field(f.name) for f in dtype.fields] + items
        elif items:
            extra = pl.struct(items).struct.json_encode()
            base = pl.col(meta_column).cast(pl.String).fill_null("{}")
            return pl.when(base.str.strip_chars() == "{}").then(extra).otherwise(
                base.str.strip_chars().str.strip_suffix("}") + pl.lit(",") + extra.str.strip_prefix("{"))
        else:
            return pl.col(meta_column).cast(pl.String).fill_null("{}")
    return pl.struct(items).struct.json_encode() if items else pl.lit("{}")


def _patch(used: set[str], partial: dict[str, set[str]]) -> str:
    """A merge patch deleting what the mapping used: whole keys, and the fields read through `a.b`."""
    patch: dict[str, object] = {name: None for name in used if name != "_pos"}
    for head, fields in partial.items():
        if head not in used:
            patch[head] = {name: None for name in fields}
    return json.dumps(patch, ensure_ascii=False)


def verbatim_meta(out: pl.DataFrame, raw: Callable[[np.ndarray], pl.Series], used: set[str],
                  partial: dict[str, set[str]], meta_dtype: pl.DataType | None) -> pl.DataFrame:
    """`out` with the meta of rows that hold a null struct field (or may hold an integer beyond 64 bits)
    rebuilt from their source text.

    `meta_dtype`: the type of the source's own `meta` column (an export ingested again), whose
    object is the base the other leftovers are merged into; text meta is left as it is."""
    if meta_dtype is not None and not isinstance(meta_dtype, pl.Struct):
        return out
    meta = out["meta"]
    suspect = np.flatnonzero((meta.str.contains(NULL_FIELD, literal=True) | meta.str.contains(BIG_INTEGER))
                             .fill_null(False).to_numpy())
    if not len(suspect):
        return out
    leftovers = f"json_merge_patch(raw, {sql_string(_patch(used, partial))})"
    expr = (f"json_merge_patch(coalesce(json_extract(raw, '$.meta'), '{{}}'), {leftovers})"
            if meta_dtype is not None else leftovers)
    texts = pl.DataFrame({"raw": raw(suspect)})
    con = duckdb.connect()
    try:
        con.register("texts", texts.to_arrow())
        rebuilt = query_frame(con, f"SELECT CAST({expr} AS VARCHAR) AS meta FROM texts")["meta"]
    except duckdb.Error:
        return out  # text DuckDB cannot parse (e.g. a lone surrogate escape): keep the columnar meta
    except UnicodeDecodeError:  # DuckDB's JSON functions returned broken UTF-8 (found by fuzzing): patch here
        try:
            rebuilt = pl.Series("meta", [_rebuild(text, used, partial, meta_dtype is not None)
                                         for text in texts["raw"]], dtype=pl.String)
        except ValueError:
            return out  # text Python's json cannot parse either: keep the columnar meta
    finally:
        con.close()
    return out.with_columns(out["meta"].scatter(suspect, rebuilt))


def _merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch, as DuckDB's json_merge_patch applies it."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge_patch(merged.get(key), value)
    return merged


def _rebuild(text: str, used: set[str], partial: dict[str, set[str]], from_meta: bool) -> str:
    """One row's meta rebuilt from its source text in Python: the fallback of the DuckDB expression."""
    row = json.loads(text.lstrip("\ufeff"))  # a file's first line may start with a BOM
    leftovers = _merge_patch(row, json.loads(_patch(used, partial)))
    if from_meta:
        base = row.get("meta") if isinstance(row, dict) and isinstance(row.get("meta"), dict) else {}
        leftovers = _merge_patch(base, leftovers)
    return json.dumps(leftovers, ensure_ascii=False, separators=(",", ":"))
