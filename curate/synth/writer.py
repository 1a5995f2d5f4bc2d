"""Synthesized rows and drop records into a new dataset version (shards, lineage, drops).

Rows get content ids like ingested ones (`curate.catalog.ids`); an exact duplicate of an
earlier row is dropped and recorded, as ingest does. Every candidate a recipe rejected
is recorded in `drops` with its reason and a detail, so `curate show` accounts for all
of them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import xxhash

from curate.catalog.ids import content_id
from curate.catalog.schema import CANONICAL_COLUMNS, MESSAGES
from curate.catalog.versions import DatasetVersion, Lineage, ShardWriter, StagedShards, commit_version
from curate.catalog.workspace import Workspace
from curate.errors import CurateError


@dataclass
class SynthRow:
    prompt: Any  # text, or a list of {role, content} messages
    response: str | None
    answer: str | None = None
    tests: str | None = None
    domain: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Drop:
    id: str
    reason: str
    detail: str = ""

    @classmethod
    def of(cls, prompt: Any, response: str | None, reason: str, detail: str = "") -> Drop:
        return cls(content_id(prompt, response), reason, detail)


class NothingSynthesized(CurateError):
    """Every candidate was filtered out."""


def drop_counts(drops: Sequence[Drop]) -> dict[str, int]:
    return dict(sorted(Counter(d.reason for d in drops).items()))


def _frame(rows: Sequence[SynthRow], prompt_type: str) -> pl.DataFrame:
    prompt_dtype = MESSAGES if prompt_type == "messages" else pl.String
    data = {
        "id": [content_id(r.prompt, r.response) for r in rows],
        "prompt": pl.Series("prompt", [r.prompt for r in rows], dtype=prompt_dtype),
        "response": [r.response for r in rows], "answer": [r.answer for r in rows],
        "tests": [r.tests for r in rows], "domain": [r.domain for r in rows],
        "meta": [json.dumps(r.meta, ensure_ascii=False, sort_keys=True) for r in rows],
    }
    schema = {"id": pl.String, "prompt": prompt_dtype, "response": pl.String, "answer": pl.String,
              "tests": pl.String, "domain": pl.String, "meta": pl.String}
    return pl.DataFrame(data, schema=schema).select(CANONICAL_COLUMNS)


def prompt_type_of(rows: Sequence[SynthRow]) -> str:
    kinds = {"messages" if isinstance(r.prompt, list) else "text" for r in rows}
    if len(kinds) > 1:
        raise CurateError("synthesized rows mix text and message prompts; one dataset version holds one kind")
    return kinds.pop() if kinds else "text"


def commit_rows(ws: Workspace, name: str, rows: Sequence[SynthRow], drops: list[Drop], step: Lineage,
                license: str | None, *, allow_empty: bool = False, prompt_type: str | None = None) -> DatasetVersion:
    """Write `rows` as the next version of `name`, with `step` as its lineage and `drops` recorded.

    No rows is an error, unless `allow_empty`: then the version has no rows but its lineage and
    drops still say what was tried (rejection sampling that accepted nothing is a finding).
    """
    if not rows and not allow_empty:
        counts = drop_counts(drops)
        raise NothingSynthesized(
            "no synthesized row passed the filters" + (f" (dropped: {json.dumps(counts)})" if counts else ""),
            hint="the generations are cached: rerun with a larger -n, other sampling options or a stronger model; "
                 "nothing is generated twice")
    prompt_type = prompt_type_of(rows) if rows else (prompt_type or "text")
    frame = _frame(rows, prompt_type)
    first = frame["id"].is_first_distinct()
    for row_id in frame.filter(~first)["id"].to_list():
        drops.append(Drop(row_id, "duplicate", "an identical row was synthesized earlier in this run"))
    frame = frame.filter(first)
    step.rows_out = frame.height
    step.drop_counts = drop_counts(drops)
    drop_frame = pl.DataFrame({"step": [0] * len(drops), "id": [d.id for d in drops],
                               "reason": [d.reason for d in drops], "detail": [d.detail for d in drops]},
                              schema={"step": pl.Int32, "id": pl.String, "reason": pl.String, "detail": pl.String})
    with ws.staging("synth") as folder:
        if frame.height:
            writer = ShardWriter(folder)
            writer.write(frame)
            staged = writer.close()
        else:  # one empty shard keeps the canonical schema readable
            frame.write_parquet(folder / "part-00000.parquet")
            staged = StagedShards(folder, 0, 1, xxhash.xxh3_128().hexdigest(),
                                  {k: str(v) for k, v in frame.schema.items()})
        return commit_version(ws, name, staged, [step], prompt_type=prompt_type, license=license, drops=drop_frame)
