"""What `curate show` reports about a version, computed column-wise over its shards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from curate.catalog.versions import DatasetVersion, lineage_of
from curate.catalog.workspace import Workspace

CONFLICT_EXAMPLES = 5


@dataclass
class Conflicts:
    """Prompts that appear with more than one distinct answer (kept apart by the content id)."""

    prompts: int = 0
    rows: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)  # {"prompt", "answers", "ids"}


@dataclass
class Summary:
    version: DatasetVersion
    non_null: dict[str, int]
    domains: list[tuple[str | None, int]]  # every domain, most rows first
    lengths: dict[str, dict[str, float]]
    lineage: list[dict[str, Any]]
    drops: dict[str, int]
    samples: list[dict[str, Any]] = field(default_factory=list)
    present: dict[str, int] = field(default_factory=dict)  # non-null and, for text, not blank
    conflicts: Conflicts = field(default_factory=Conflicts)

    def payload(self) -> dict[str, Any]:
        """What `curate show --json` prints (and the report's `show` part)."""
        version, conflicts = self.version, self.conflicts
        return {"version": version.ref, "rows": version.rows, "prompt_type": version.prompt_type,
                "license": version.license, "content_hash": version.content_hash, "non_null": self.non_null,
                "present": self.present, "domains": self.domains, "lengths": self.lengths,
                "answer_conflicts": {"prompts": conflicts.prompts, "rows": conflicts.rows,
                                     "examples": conflicts.examples},
                "drops": self.drops, "lineage": self.lineage, "samples": self.samples}


def _text_length(column: str, messages: bool) -> pl.Expr:
    if messages and column == "prompt":
        return pl.col("prompt").list.eval(pl.element().struct.field("content").str.len_chars()).list.sum()
    return pl.col(column).str.len_chars()


def _present(name: str, dtype: pl.DataType) -> pl.Expr:
    """A cell that holds something: not null, not blank text, not an empty list."""
    column = pl.col(name)
    if dtype == pl.String:
        return column.is_not_null() & (column.str.strip_chars() != "")
    if isinstance(dtype, pl.List):
        return column.is_not_null() & (column.list.len() > 0)
    return column.is_not_null()


def _prompt_key(messages: bool) -> pl.Expr:
    return pl.struct("prompt").struct.json_encode() if messages else pl.col("prompt")


def answer_conflicts(version: DatasetVersion, examples: int = CONFLICT_EXAMPLES) -> Conflicts:
    """Prompts stored with two or more different answers: counted, with a few examples.

    Such rows are not duplicates (the answer is part of the content id), but a reward
    that checks answers sees two gold answers for one question: most often a mapping that
    left out part of the question (e.g. SVAMP's Body), sometimes a labelling error.
    """
    frame = version.scan().with_row_index("_row").filter(pl.col("answer").is_not_null())
    groups = (frame.group_by(_prompt_key(version.prompt_type == "messages").alias("_key"))
              .agg(pl.col("answer").n_unique().alias("answers"), pl.len().alias("rows"),
                   pl.col("_row").min().alias("_first"))
              .filter(pl.col("answers") > 1))
    counts = groups.select(pl.len().alias("prompts"), pl.col("rows").sum().alias("rows")).collect().row(0, named=True)
    if not counts["prompts"]:
        return Conflicts()
    picked = groups.sort("_first").head(examples).select("_key")
    detail = (frame.join(picked, left_on=_prompt_key(version.prompt_type == "messages"), right_on="_key")
              .sort("_row").group_by("prompt", maintain_order=True)
              .agg(pl.col("answer").unique(maintain_order=True).alias("answers"), pl.col("id").alias("ids"))
              .collect().to_dicts())
    return Conflicts(int(counts["prompts"]), int(counts["rows"]), detail)


def summarize(ws: Workspace, version: DatasetVersion, samples: int = 3) -> Summary:
    frame = version.scan()
    messages = version.prompt_type == "messages"
    schema = frame.collect_schema()
    counts = frame.select(*[pl.col(c).is_not_null().sum().alias(c) for c in schema],
                          *[_present(c, t).sum().alias("_present_" + c) for c, t in schema.items()]).collect()
    row = counts.row(0, named=True)
    non_null = {c: int(row[c]) for c in schema}
    present = {c: int(row["_present_" + c]) for c in schema}
    domains = (frame.group_by("domain").agg(pl.len().alias("n")).sort(["n", "domain"], descending=[True, False],
                                                                       nulls_last=True)
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
    conflicts = answer_conflicts(version) if "answer" in schema else Conflicts()
    return Summary(version, non_null, domains, lengths, lineage_of(ws, version), drops, rows, present, conflicts)
