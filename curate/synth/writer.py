"""Synthesized rows and drop records into a new dataset version (shards, lineage, drops).

Rows get content ids like ingested ones (`curate.catalog.ids`); an exact duplicate of an
earlier row is dropped and recorded, as ingest does. Every candidate a recipe rejected
is recorded in `drops` with its reason and a detail, so `curate show` accounts for all
of them. `RowSink` writes rows to shards as they come (bounded memory, for recipes that
run over a whole pool); `commit_rows` does the same for rows a recipe already holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.catalog.ids import content_id
from curate.catalog.schema import CANONICAL_COLUMNS, MESSAGES
from curate.catalog.versions import DatasetVersion, Lineage, ShardWriter, commit_version, list_versions
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


def _frame(rows: Sequence[SynthRow], prompt_type: str) -> pl.DataFrame:
    prompt_dtype = MESSAGES if prompt_type == "messages" else pl.String
    data = {
        "id": [content_id(r.prompt, r.response, r.answer, r.tests) for r in rows],
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


DROP_SCHEMA = {"step": pl.Int32, "id": pl.String, "reason": pl.String, "detail": pl.String}


def _drop_frame(drops: Sequence[Drop]) -> pl.DataFrame:
    return pl.DataFrame({"step": [0] * len(drops), "id": [d.id for d in drops], "reason": [d.reason for d in drops],
                         "detail": [d.detail for d in drops]}, schema=DROP_SCHEMA)


class RowSink:
    """Rows written to shards as they come, so memory stays bounded by one batch; exact duplicates of rows
    written earlier are dropped and recorded (only the ids seen so far, one string column, grow with the run)."""

    def __init__(self, folder: Path, prompt_type: str | None = None):
        self.folder = folder
        self.prompt_type = prompt_type
        self.writer = ShardWriter(folder)
        self.seen = pl.Series("id", [], dtype=pl.String)
        self.drops: list[pl.DataFrame] = []
        self.rows = 0

    def add(self, rows: Sequence[SynthRow], drops: Sequence[Drop] = ()) -> None:
        if drops:
            self.drops.append(_drop_frame(drops))
        if not rows:
            return
        kind = prompt_type_of(rows)
        if self.prompt_type not in (None, kind) and self.rows:
            raise CurateError("synthesized rows mix text and message prompts; one dataset version holds one kind")
        self.prompt_type = kind
        frame = _frame(rows, kind)
        first = frame["id"].is_first_distinct() & ~frame["id"].is_in(self.seen.implode())
        repeated = frame.filter(~first)["id"].to_list()
        if repeated:
            self.drops.append(_drop_frame([Drop(i, "duplicate", "an identical row was synthesized earlier in this run")
                                           for i in repeated]))
        frame = frame.filter(first)
        self.seen = pl.concat([self.seen, frame["id"]], rechunk=False)
        self.writer.write(frame)
        self.rows += frame.height

    def drop_counts(self) -> dict[str, int]:
        if not self.drops:
            return {}
        counts = pl.concat(self.drops).group_by("reason").len().sort("reason")
        return dict(counts.iter_rows())

    def commit(self, ws: Workspace, name: str, step: Lineage, license: str | None,
               allow_empty: bool = False) -> DatasetVersion:
        """The next version of `name`: the rows written, `step` as its lineage, every drop recorded.

        No rows is an error, unless `allow_empty`: then the version has no rows but its lineage and
        drops still say what was tried (rejection sampling that accepted nothing is a finding).
        """
        counts = self.drop_counts()
        if self.rows == 0 and not allow_empty:
            self.writer.close()
            raise NothingSynthesized(
                "no synthesized row passed the filters" + (f" (dropped: {json.dumps(counts)})" if counts else ""),
                hint="the generations are cached: rerun with a larger -n, other sampling options or a stronger "
                     "model; nothing is generated twice")
        staged = self.writer.close()
        prompt_type = self.prompt_type or "text"
        if self.rows == 0:  # one empty shard keeps the canonical schema readable
            empty = _frame([], prompt_type)
            empty.write_parquet(self.folder / "part-00000.parquet")
            staged = dataclasses.replace(staged, shards=1, schema={k: str(v) for k, v in empty.schema.items()})
        step.rows_out = staged.rows
        step.drop_counts = counts
        drops = pl.concat(self.drops) if self.drops else None
        latest = list_versions(ws, name)[-1:]
        if latest and latest[0].content_hash == staged.content_hash and latest[0].prompt_type == prompt_type:
            return latest[0]  # a rerun of a finished synth (every generation cached): no second, identical version
        return commit_version(ws, name, staged, [step], prompt_type=prompt_type, license=license, drops=drops)


@contextlib.contextmanager
def row_sink(ws: Workspace, prompt_type: str | None = None) -> Iterator[RowSink]:
    """A sink in a private staging folder (removed unless committed)."""
    with ws.staging("synth") as folder:
        yield RowSink(folder, prompt_type)


def commit_rows(ws: Workspace, name: str, rows: Sequence[SynthRow], drops: list[Drop], step: Lineage,
                license: str | None, *, allow_empty: bool = False, prompt_type: str | None = None) -> DatasetVersion:
    """Write `rows` (held in memory by the caller) as the next version of `name`; see `RowSink.commit`."""
    with row_sink(ws, prompt_type) as sink:
        sink.add(rows, drops)
        return sink.commit(ws, name, step, license, allow_empty)
