"""What `curate show` reports about a version, computed column-wise over its shards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from curate.catalog.versions import DatasetVersion, lineage_of
from curate.catalog.workspace import Workspace


@dataclass
class Summary:
    version: DatasetVersion
    non_null: dict[str, int]
    domains: list[tuple[str | None, int]]
    lengths: dict[str, dict[str, float]]
    lineage: list[dict[str, Any]]
    drops: dict[str, int]
    samples: list[dict[str, Any]] = field(default_factory=list)


def _text_length(column: str, messages: bool) -> pl.Expr:
    if messages and column == "prompt":
        return pl.col("prompt").list.eval(pl.element().struct.field("content").str.len_chars()).list.sum()
    return pl.col(column).str.len_chars()


def summarize(ws: Workspace, version: DatasetVersion, samples: int = 3) -> Summary:
    frame = version.scan()
    messages = version.prompt_type == "messages"
    non_null = frame.select(pl.all().is_not_null().sum()).collect().row(0, named=True)
    domains = (frame.group_by("domain").agg(pl.len().alias("n")).sort("n", descending=True).head(20)
               .collect().rows())
    lengths = {}
    for column in ("prompt", "response"):
        if non_null.get(column):
            length = _text_length(column, messages)
            stats = frame.select(
                length.min().alias("min"), length.median().alias("median"), length.mean().alias("mean"),
                length.quantile(0.95).alias("p95"), length.max().alias("max"),
            ).collect().row(0, named=True)
            lengths[column] = {k: float(v) for k, v in stats.items() if v is not None}
    with ws.catalog() as con:
        drops = dict(con.execute(
            "SELECT reason, count(*) FROM drops WHERE name = ? AND version = ? GROUP BY reason ORDER BY 2 DESC",
            [version.name, version.version]).fetchall())
    rows = frame.head(samples).collect().to_dicts()
    return Summary(version, {k: int(v) for k, v in non_null.items()}, domains, lengths,
                   lineage_of(ws, version), drops, rows)
