"""Rows two dataset versions share, by id or by normalised prompt: the leakage check.

A held-out set that shares rows with the pool a selection saw measures memorisation, not
learning. Two rows are the same when their ids are equal (ids are content hashes unless a
user column replaced them) or when their prompts are equal after normalisation: case-folded,
every run of whitespace made one space, trimmed; a message prompt is the role and content of
each message, joined. Paraphrases and near-duplicates are not caught (`curate select
--strategy dedup` finds those).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from curate.catalog.versions import DatasetVersion


@dataclass
class Overlap:
    by_id: int
    by_prompt: int
    rows: int  # rows of the first version that share an id or a prompt with the second
    examples: list[str] = field(default_factory=list)  # a few of those rows' prompts, shortened

    def __bool__(self) -> bool:
        return self.rows > 0


def normalised_prompt(messages: bool) -> pl.Expr:
    if messages:
        text = pl.col("prompt").list.eval(
            pl.concat_str(pl.element().struct.field("role"), pl.lit(": "), pl.element().struct.field("content"),
                          ignore_nulls=True)).list.join("\n")
    else:
        text = pl.col("prompt").cast(pl.String)
    return text.str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars().alias("_norm")


def _keys(version: DatasetVersion) -> pl.LazyFrame:
    return version.scan().select(pl.col("id").cast(pl.String), normalised_prompt(version.prompt_type == "messages"))


def shared_rows(first: DatasetVersion, second: DatasetVersion, examples: int = 3) -> Overlap:
    """Rows of `first` that `second` also holds (same id, or same normalised prompt)."""
    a, b = _keys(first), _keys(second)
    ids = b.select("id").drop_nulls().unique().with_columns(pl.lit(True).alias("_id"))
    prompts = b.select("_norm").drop_nulls().unique().with_columns(pl.lit(True).alias("_prompt"))
    marked = (a.join(ids, on="id", how="left").join(prompts, on="_norm", how="left")
              .with_columns(pl.col("_id", "_prompt").fill_null(False)))
    counts = marked.select(pl.col("_id").sum().alias("by_id"), pl.col("_prompt").sum().alias("by_prompt"),
                           (pl.col("_id") | pl.col("_prompt")).sum().alias("rows")).collect().row(0, named=True)
    sample = (marked.filter(pl.col("_id") | pl.col("_prompt")).select("_norm").head(examples).collect()["_norm"]
              .to_list())
    return Overlap(int(counts["by_id"]), int(counts["by_prompt"]), int(counts["rows"]),
                   [_shorten(text) for text in sample])


def _shorten(text: str | None, limit: int = 80) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"
