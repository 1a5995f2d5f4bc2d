"""Ingest: any supported source into a new, deduplicated dataset version.

Streaming: chunks are mapped, hashed and written one at a time; only the ids seen so
far (one string column) grow with the input. Exact duplicates (same content id) are
kept once; each dropped copy is recorded in `drops` with the line it came from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain

import polars as pl

import polars_hash  # noqa: F401  (nchash namespace)

from curate.catalog.gold import normalise_answers
from curate.catalog.ids import OPTIONAL_FIELDS, content_digest_expr, digest_key
from curate.catalog.meta import meta_expr, verbatim_meta
from curate.catalog.readers import Chunk, open_source
from curate.catalog.schema import CANONICAL_COLUMNS, MESSAGES
from curate.catalog.shapes import Shape, detect, override, source_expr
from curate.catalog.versions import (DatasetVersion, Lineage, ShardWriter, StagedShards, check_name, commit_version,
                                     list_versions)
from curate.catalog.workspace import Workspace
from curate.errors import BadInput, BadUsage
from curate.util.prefetch import prefetch

EMPTY_IDS = pl.Series("id", [], dtype=pl.String)


@dataclass
class IngestOptions:
    name: str
    mapping: dict[str, str] = field(default_factory=dict)
    domain: str | None = None
    domain_field: str | None = None
    license: str | None = None
    format: str | None = None
    split: str | None = None
    skip_invalid: bool = False
    new_version: bool = False  # commit even when the content equals the latest version's


@dataclass
class IngestReport:
    version: DatasetVersion
    shape: str
    rows_read: int
    duplicates: int
    invalid: int
    seconds: float
    answers_normalised: int = 0  # numeric gold answers stripped of units/separators (originals in meta)
    duplicates_differing: int = 0  # dropped copies whose meta or domain differs from the kept one
    unchanged: bool = False  # the latest version already held this content: no version was made


def ingest(
    ws: Workspace,
    source: str,
    options: IngestOptions,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Read `source`, map it to canonical columns, drop exact duplicates, commit a version."""
    check_name(options.name)
    if options.domain and options.domain_field:
        raise BadUsage("--domain and --domain-field are exclusive", hint="give a fixed domain or a field, not both")
    start = time.perf_counter()
    chunks = prefetch(open_source(source, fmt=options.format, split=options.split))
    first = next(chunks, None)
    if first is None or first.frame.height == 0:
        raise BadInput(f"{source}: the input is empty, there are no rows to ingest",
                       hint="check that you passed the right file")
    shape = _shape_for(first, options)

    rows_read = duplicates = differing = invalid = normalised = 0
    seen = pl.DataFrame(schema={"_cid": pl.UInt128, "_mh": pl.UInt64, "_dh": pl.UInt64})
    seen_user = EMPTY_IDS
    drop_frames: list[pl.DataFrame] = []
    with ws.staging("ingest") as folder:
        writer = ShardWriter(folder)
        for chunk in chain([first], chunks):
            frame, changed = _canonical(chunk, shape, options)
            rows_read += frame.height
            normalised += changed
            bad = frame.filter(~_has_prompt(shape.prompt_type))
            if bad.height:
                if not options.skip_invalid:
                    where = f"{chunk.source}, {chunk.unit} {bad['_pos'][0]}"
                    raise BadInput(f"{where}: the prompt is empty or missing ({bad.height} such rows in this part)",
                                   hint="fix those rows, map another column with --map prompt=COLUMN, "
                                        "or pass --skip-invalid to drop them (they are recorded as dropped)")
                invalid += bad.height
                drop_frames.append(_drop_rows(bad, "missing_prompt", chunk))
                frame = frame.filter(_has_prompt(shape.prompt_type))
            # Probe what was seen with this chunk's keys (a hash set of the chunk, not of all that was seen).
            seen_here = seen.filter(pl.col("_cid").is_in(frame["_cid"].implode()))
            first_copy = frame["_cid"].is_first_distinct() & ~frame["_cid"].is_in(seen_here["_cid"].implode())
            dups = frame.filter(~first_copy)
            frame = frame.filter(first_copy)
            kept_here = frame.select("_cid", *_label_hashes())
            seen = pl.concat([seen, kept_here])
            if dups.height:
                duplicates += dups.height
                dropped, differ = _duplicate_drops(dups, pl.concat([seen_here, kept_here]), chunk)
                drop_frames.append(dropped)
                differing += differ
            if "_user_id" in frame.columns:
                seen_user = _check_user_ids(frame, seen_user, chunk)
            writer.write(frame.select(CANONICAL_COLUMNS))
            if progress:
                progress(rows_read)
        staged = writer.close()
        if staged.rows == 0:
            raise BadInput(f"{source}: no rows left to ingest after dropping {invalid} invalid rows")
        step = Lineage(
            op="ingest",
            inputs=[source],
            params={"shape": shape.name, "format": options.format, "map": options.mapping,
                    "domain": options.domain, "domain_field": options.domain_field, "split": options.split,
                    "skip_invalid": options.skip_invalid, "answers_normalised": normalised},
            rows_in=rows_read,
            rows_out=staged.rows,
            drop_counts={k: v for k, v in {"duplicate": duplicates, "missing_prompt": invalid}.items() if v},
            duration_s=round(time.perf_counter() - start, 3),
        )
        same = None if options.new_version else _same_as_latest(ws, options, staged, shape.prompt_type)
        if same is not None:
            return IngestReport(same, shape.name, rows_read, duplicates, invalid,
                                round(time.perf_counter() - start, 3), normalised, differing, unchanged=True)
        drops = pl.concat(drop_frames) if drop_frames else None
        version = commit_version(ws, options.name, staged, [step], prompt_type=shape.prompt_type,
                                 license=options.license, drops=drops)
    return IngestReport(version, shape.name, rows_read, duplicates, invalid, round(time.perf_counter() - start, 3),
                        normalised, differing)


def _same_as_latest(ws: Workspace, options: IngestOptions, staged: StagedShards,
                    prompt_type: str) -> DatasetVersion | None:
    """The latest version of the name when it holds exactly the staged rows (content hash, prompt type)
    and no other license was given: ingesting it again would only make a copy."""
    versions = list_versions(ws, options.name)
    if not versions:
        return None
    latest = versions[-1]
    same = latest.content_hash == staged.content_hash and latest.prompt_type == prompt_type
    return latest if same and options.license in (None, latest.license) else None


def _shape_for(first: Chunk, options: IngestOptions) -> Shape:
    frame = first.frame
    shape = override(detect(frame), frame, options.mapping)
    if shape is None or "prompt" not in shape.columns:
        raise BadInput(
            f"{first.source}: cannot find the prompt; columns are: {', '.join(frame.columns)}",
            hint="name the columns with --map, e.g. --map prompt=COLUMN --map response=COLUMN",
        )
    if options.domain_field and source_expr(frame, options.domain_field) is None:
        raise BadUsage(f"--domain-field {options.domain_field}: no such column",
                       hint="columns: " + ", ".join(frame.columns))
    return shape


def _canonical(chunk: Chunk, shape: Shape, options: IngestOptions) -> tuple[pl.DataFrame, int]:
    """Canonical columns plus `_cid` (content id, for dedup) and `_pos` (source position); and how many
    gold answers were normalised to their number (curate.catalog.gold)."""
    frame = chunk.frame.with_columns(pl.Series("_pos", chunk.positions))
    if shape.prepare:
        frame = shape.prepare(frame)
    columns = dict(shape.columns)
    used = set(shape.consumed) | {"_pos"}
    partial = {head: set(fields) for head, fields in shape.consumed_fields.items()}
    if options.domain:
        columns["domain"] = pl.lit(options.domain)
    elif options.domain_field:
        columns["domain"] = source_expr(frame, options.domain_field)
        head, *rest = options.domain_field.split(".")
        if not rest:
            used.add(head)
        elif len(rest) == 1:
            partial.setdefault(head, set()).add(rest[0])
    elif "domain" not in columns and "domain" in frame.columns:
        columns["domain"] = pl.col("domain")
        used.add("domain")
    for name in used - set(frame.columns):  # a chunk where every row lacked an optional field
        frame = frame.with_columns(pl.lit(None).alias(name))
    meta = meta_expr(frame, used, partial, shape.meta)
    prompt_dtype = MESSAGES if shape.prompt_type == "messages" else pl.String
    try:
        out = frame.select(
            columns["prompt"].cast(prompt_dtype).alias("prompt"),
            *[columns.get(c, pl.lit(None)).cast(pl.String).alias(c) for c in ("response", "answer", "tests", "domain")],
            meta.alias("meta"),
            pl.col("_pos"),
            *([columns["id"].cast(pl.String).alias("_user_id")] if "id" in columns else []),
        )
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        raise BadInput(f"{chunk.source}: cannot map the rows as {shape.name} ({str(exc).splitlines()[0]})",
                       hint="name the columns yourself with --map DST=SRC") from None
    if chunk.raw is not None and shape.prepare is None:
        out = verbatim_meta(out, chunk.raw, used, partial, frame.schema.get(shape.meta) if shape.meta else None)
    out, normalised = normalise_answers(out)
    present = tuple(c for c in OPTIONAL_FIELDS if out[c].null_count() < out.height)  # all-null: same id, less work
    out = out.with_columns(content_digest_expr(present).alias("_digest"))
    out = out.with_columns(digest_key(pl.col("_digest")).alias("_cid"),
                           pl.col("_digest").bin.encode("hex").alias("_hex")).drop("_digest")
    return out.with_columns(pl.col("_user_id" if "id" in columns else "_hex").alias("id")).drop("_hex"), normalised


def _has_prompt(prompt_type: str) -> pl.Expr:
    prompt = pl.col("prompt")
    if prompt_type == "messages":
        return prompt.is_not_null() & (prompt.list.len() > 0)
    return prompt.is_not_null() & (prompt.str.strip_chars() != "")


def _label_hashes() -> list[pl.Expr]:
    """Hashes of what the content id leaves out (meta, domain), to tell a copy that differs there."""
    return [pl.col("meta").nchash.xxh3_64().alias("_mh"), pl.col("domain").nchash.xxh3_64().fill_null(0).alias("_dh")]


def _duplicate_drops(dups: pl.DataFrame, kept: pl.DataFrame, chunk: Chunk) -> tuple[pl.DataFrame, int]:
    """Drop rows for exact duplicates, and how many differ from their kept copy in meta or domain
    (those keep their meta and domain in the detail, so nothing is lost).

    `kept`: the kept copies (`_cid`, `_mh`, `_dh`) this chunk's rows can match, not everything seen."""
    kept = kept.filter(pl.col("_cid").is_in(dups["_cid"].implode()))
    mine = [h.alias("_dup" + h.meta.output_name()) for h in _label_hashes()]
    dups = dups.with_columns(mine).join(kept, on="_cid", how="left")
    rows = _drop_rows(dups, "duplicate", chunk)
    meta_differs = (dups["_dup_mh"] != dups["_mh"]).fill_null(True)
    domain_differs = (dups["_dup_dh"] != dups["_dh"]).fill_null(True)
    differing = int((meta_differs | domain_differs).sum())
    return rows.with_columns(
        pl.col("detail")
        + pl.when(meta_differs).then(pl.lit("; meta differs from the kept copy: ") + dups["meta"]).otherwise(pl.lit(""))
        + pl.when(domain_differs).then(pl.lit("; domain differs from the kept copy: ")
                                       + dups["domain"].fill_null("(none)")).otherwise(pl.lit(""))
    ), differing


def _drop_rows(rows: pl.DataFrame, reason: str, chunk: Chunk) -> pl.DataFrame:
    return rows.select(
        pl.lit(0).alias("step"),
        pl.col("id"),
        pl.lit(reason).alias("reason"),
        (pl.lit(f"{chunk.source}, {chunk.unit} ") + pl.col("_pos").cast(pl.String)).alias("detail"),
    )


def _check_user_ids(frame: pl.DataFrame, seen: pl.Series, chunk: Chunk) -> pl.Series:
    """A mapped id column must name each distinct example once."""
    ids = frame["_user_id"]
    clash = ids.is_null() | ~ids.is_first_distinct() | ids.is_in(seen.implode())
    if clash.any():
        row = frame.filter(clash).row(0, named=True)
        problem = "is empty" if row["_user_id"] is None else f"{row['_user_id']!r} is used again for different content"
        raise BadInput(f"{chunk.source}, {chunk.unit} {row['_pos']}: the id column {problem}",
                       hint="ids must be unique; drop --map id=... to use content ids instead")
    return pl.concat([seen, ids])
