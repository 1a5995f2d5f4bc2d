"""Decontamination: drop rows that share a word n-gram with an evaluation set.

The n-gram method of GPT-3 (Brown et al. 2020, appendix C) as datatrove implements it
(`datatrove.pipeline.decont.n_grams`, used by open-r1 and SmolLM): texts are simplified
(datatrove's `simplify_text` defaults: lower case; runs of whitespace to one space;
punctuation removed; accents removed after NFD; every run of digits becomes `0`) and split
into words; every n-gram of words (13 by default, as GPT-3 and open-r1's recipes) is hashed
(xxh3-64 of the words joined by spaces). An eval set contributes the n-grams of its prompts
(datatrove's `find_query_ngrams`; on by default here, because an SFT or RL pool is
contaminated first by the eval's questions), of its responses (datatrove's labels), and those
spanning the end of the prompt and the start of the response (`find_overlap_ngrams`). A pool
row, its prompt and response read as one text, is dropped when any of its n-grams is in the
index; the drop detail names the eval set, the eval row's id and the shared n-gram.

Differences from datatrove, on purpose: words are split on whitespace after the simplification
(datatrove uses nltk's `word_tokenize`, which after punctuation removal splits the same text the
same way except for a few English contractions and quotes), so curate needs no nltk; and the
index is built from eval sets in the catalog, not from lighteval task names. An eval text with
fewer than `n` words has no n-gram and cannot match anything (as in datatrove); `stats` counts
such rows so a short-question eval set is noticed.
"""

from __future__ import annotations

import string
from typing import ClassVar

import numpy as np
import polars as pl
import polars_hash  # noqa: F401  (nchash namespace)

from curate.errors import BadInput, BadUsage
from curate.selectors.base import FilterSelector, Selection, dropped_rows

CONTAMINATED = "contaminated"

# datatrove's punctuation: ASCII punctuation, some CJK and typographic marks, and control characters.
_MARKS = string.punctuation + "—”％１〈、━【「」，】；“《„’∶´．（–？！：～«〉》）。…►»"
PUNCTUATION = "[" + "".join("\\" + c if c in "\\[]^-&~|" else c for c in _MARKS) + \
    r"\x00-\x08\x0B\x0C\x0D-\x1F\x7F-\x9F]"


def text_of(frame: pl.DataFrame, column: str) -> pl.Expr:
    """`column` of `frame` as one string per row: message contents joined by newlines; null when absent."""
    if column not in frame.columns:
        return pl.lit(None, pl.String)
    if isinstance(frame.schema[column], pl.List):
        return pl.col(column).list.eval(pl.element().struct.field("content").fill_null("")).list.join("\n")
    return pl.col(column).cast(pl.String)


def words_expr(text: pl.Expr) -> pl.Expr:
    """datatrove's `simplify_text`, then the words (a list of strings; empty for a null text)."""
    simple = (text.fill_null("").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()
              .str.replace_all(PUNCTUATION, "").str.normalize("NFD").str.replace_all(r"\p{Mn}", "")
              .str.replace_all(r"\d+", "0"))
    return simple.str.extract_all(r"\S+")


def ngrams_expr(words: pl.Expr, n: int) -> pl.Expr:
    """Every run of `n` consecutive words, joined by spaces (none when there are fewer than `n`)."""
    return words.list.eval(pl.concat_str([pl.element().shift(-k) for k in range(n)], separator=" ").drop_nulls())


def _hashed(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """One row per n-gram of `column` (a list column), with its xxh3-64 hash."""
    return (frame.explode(column).drop_nulls(column)
            .with_columns(pl.col(column).nchash.xxh3_64().alias("hash")))


def eval_index(version, n: int, query: bool = True, overlap: bool = True) -> tuple[pl.DataFrame, int]:
    """(hash, eval, eval_id, ngram) for every n-gram of an eval version (first row wins),
    and how many of its rows have no n-gram at all."""
    pieces, empty = [], 0
    columns = [c for c in ("id", "prompt", "response") if c in version.columns]
    for batch in version.iter_batches(20_000, columns=columns):
        words = batch.select("id", words_expr(text_of(batch, "prompt")).alias("q"),
                             words_expr(text_of(batch, "response")).alias("l"))
        sequences = [words.select("id", pl.col("l").alias("w"))]
        if query:
            sequences.append(words.select("id", pl.col("q").alias("w")))
        if overlap:
            sequences.append(words.select("id", pl.concat_list(pl.col("q").list.tail(n - 1),
                                                               pl.col("l").list.head(n - 1)).alias("w")))
        grams = pl.concat(sequences).with_columns(ngrams_expr(pl.col("w"), n).alias("ngram"))
        counts = grams.group_by("id").agg(pl.col("ngram").list.len().sum().alias("k"))
        empty += int((counts["k"] == 0).sum())
        pieces.append(_hashed(grams.select("id", "ngram"), "ngram"))
    index = pl.concat(pieces) if pieces else pl.DataFrame(schema={"id": pl.String, "ngram": pl.String,
                                                                  "hash": pl.UInt64})
    index = index.unique("hash", keep="first", maintain_order=True)
    return index.select("hash", pl.lit(version.ref).alias("eval"), pl.col("id").alias("eval_id"), "ngram"), empty


class DecontaminateSelector(FilterSelector):
    """`--strategy decontaminate --param against=EVAL[,EVAL2]`: drop rows sharing an n-gram with the evals."""

    name: ClassVar[str] = "decontaminate"
    scores_on_fit: ClassVar[bool] = True

    def __init__(self, against: str = "", n: int = 13, query: bool = True, overlap: bool = True):
        self.against = against
        self.n = n
        self.query = query
        self.overlap = overlap

    def _evals(self, pool) -> list:
        from curate.catalog.versions import resolve

        refs = [r.strip() for r in (self.against if isinstance(self.against, str) else ",".join(self.against))
                .split(",") if r.strip()]
        if not refs:
            raise BadUsage("decontaminate needs the eval sets to check against",
                           hint="pass --param against=EVAL[,EVAL2] (dataset names in the catalog)")
        if pool.ws is None:
            raise BadUsage("decontaminate reads the eval sets from the catalog: it needs a workspace")
        versions = [resolve(pool.ws, ref) for ref in refs]
        for version in versions:
            if pool.version is not None and version.ref == pool.version.ref:
                raise BadUsage(f"decontaminate: {version.ref} is the pool itself", hint="name the eval sets only")
        return versions

    def _check_params(self) -> None:
        if int(self.n) < 1:
            raise BadUsage(f"decontaminate.n must be at least 1, got {self.n}")

    def fit(self, pool) -> DecontaminateSelector:
        self._prepare(pool)
        indexes, self.short_eval_rows_ = [], {}
        for version in self._evals(pool):
            index, empty = eval_index(version, self.n, self.query, self.overlap)
            indexes.append(index)
            self.short_eval_rows_[version.ref] = empty
        index = pl.concat(indexes).unique("hash", keep="first", maintain_order=True)
        if index.height == 0:
            raise BadInput(f"the eval sets have no {self.n}-gram: every text is shorter than {self.n} words",
                           hint="pass a smaller --param decontaminate.n")
        self.index_size_ = index.height
        hits = np.zeros(pool.rows, dtype=np.int64)
        first: dict[int, tuple[str, str, str]] = {}
        for frame in pool.iter_frames([c for c in ("prompt", "response") if c in pool.columns()]):
            text = pl.concat_str([text_of(frame, "prompt").fill_null(""), text_of(frame, "response").fill_null("")],
                                 separator="\n")
            grams = frame.select("_pos", ngrams_expr(words_expr(text), self.n).alias("ngram"))
            exploded = _hashed(grams, "ngram")
            matched = exploded.join(index.select("hash", "eval", "eval_id", pl.col("ngram").alias("shared")),
                                    on="hash", how="inner")
            if matched.height == 0:
                continue
            counts = matched.group_by("_pos").agg(pl.len().alias("k"), pl.col("eval").first(),
                                                  pl.col("eval_id").first(), pl.col("shared").first())
            hits[counts["_pos"].to_numpy()] = counts["k"].to_numpy()
            for pos, evaluated, eval_id, shared in counts.select("_pos", "eval", "eval_id", "shared").iter_rows():
                first[int(pos)] = (evaluated, eval_id, shared)
        self.scores_ = np.where(self.valid_, hits.astype(np.float64), np.nan)
        self.first_match_ = first
        return self

    def select(self, budget: int | None = None) -> Selection:
        contaminated = np.flatnonzero(self.scores_ > 0)
        order = np.flatnonzero(self.valid_ & ~(self.scores_ > 0))
        details = []
        for pos in contaminated:
            evaluated, eval_id, shared = self.first_match_[int(pos)]
            details.append(f"{self.n}-gram shared with {evaluated} row {eval_id}: \"{shared}\" "
                           f"({int(self.scores_[pos])} shared n-grams)")
        drops = [dropped_rows(self.ids_.gather(contaminated), CONTAMINATED, details)] if len(contaminated) else []
        scores = pl.DataFrame({"id": self.ids_, "value": self.scores_})
        selection = self._finish(order, self.scores_[order], drops, scores=scores)
        per_eval: dict[str, int] = {}
        for pos in contaminated:
            per_eval[self.first_match_[int(pos)][0]] = per_eval.get(self.first_match_[int(pos)][0], 0) + 1
        selection.stats.update({"n": self.n, "index_ngrams": self.index_size_, "flagged": int(len(contaminated)),
                                "flagged_by_eval": per_eval, "eval_rows_without_ngram": self.short_eval_rows_})
        return selection
