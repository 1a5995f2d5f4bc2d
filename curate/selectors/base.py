"""The selector protocol: scikit-learn's feature-selection API, applied to examples.

A `Selector` stores its parameters in the constructor, learns from a `Pool` in `fit` (learned
attributes end in `_`: `scores_`, `support_`), and `select(budget)` returns a `Selection`:
the kept ids in order with their score and rank, and every dropped id with a reason. Each
strategy subclasses one of three small bases (datatrove style, one per extension point):

- `RankSelector`: a score per example; keep the best `budget` (random, length, perplexity, ifd);
- `SetSelector`: a set function maximised greedily (fisher, diversity);
- `FilterSelector`: drop what fails a test, ignore the budget (dedup);
- `Selector` itself for the rest (token-clean annotates tokens and keeps every example).

A selector may need a model (`pool.lm()`), the workspace and its ledger (`pool.ws`), or
nothing; the pool provides them lazily, so a selector asks only for what it uses.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import polars as pl

from curate.errors import BadInput, BadUsage

# Drop reasons shared by the strategies (a strategy may add its own).
BUDGET = "below_budget"
NAN_SCORE = "nan_score"
MISSING_RESPONSE = "missing_response"

KEPT_SCHEMA = {"id": pl.String, "score": pl.Float64, "rank": pl.Int64}
DROPPED_SCHEMA = {"id": pl.String, "reason": pl.String, "detail": pl.String}


@dataclass
class Selection:
    """What one selector decided about a pool.

    kept: id, score, rank (0 = best), in the order the output should have.
    dropped: id, reason, detail, one row per dropped example.
    extra: id plus columns to write beside the kept rows (e.g. token_mask), or None.
    scores: id, value: per-example scores for the catalog's scores table, or None.
    """

    strategy: str
    kept: pl.DataFrame
    dropped: pl.DataFrame
    params: dict[str, Any] = field(default_factory=dict)
    model_id: str | None = None
    model_hash: str | None = None
    extra: pl.DataFrame | None = None
    scores: pl.DataFrame | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kept = self.kept.select(pl.col(c).cast(t) for c, t in KEPT_SCHEMA.items())
        self.dropped = self.dropped.select(pl.col(c).cast(t) for c, t in DROPPED_SCHEMA.items())

    @property
    def ids(self) -> pl.Series:
        return self.kept["id"]

    @property
    def drop_counts(self) -> dict[str, int]:
        counts = self.dropped.group_by("reason").agg(pl.len()).sort("reason")
        return dict(zip(counts["reason"].to_list(), counts["len"].to_list()))

    def __len__(self) -> int:
        return self.kept.height

    def score_rows(self) -> pl.DataFrame:
        """id, value, kept for every row the step saw: what `curate report` plots with the cut.

        Where the strategy has no pool-wide score, the kept rows carry their selection score
        and the dropped rows a null.
        """
        kept_ids = self.kept["id"]
        if self.scores is not None:
            frame = self.scores.select(pl.col("id").cast(pl.String), pl.col("value").cast(pl.Float64))
        else:
            frame = pl.concat([self.kept.select("id", pl.col("score").alias("value")),
                               self.dropped.select("id", pl.lit(None, pl.Float64).alias("value"))])
        return frame.with_columns(pl.col("id").is_in(kept_ids.implode()).alias("kept"))


def empty_dropped() -> pl.DataFrame:
    return pl.DataFrame(schema=DROPPED_SCHEMA)


def dropped_rows(ids: pl.Series | list[str], reason: str, detail: pl.Series | list[str | None] | None = None) -> pl.DataFrame:
    ids = pl.Series("id", ids, dtype=pl.String)
    details = pl.Series("detail", [None] * len(ids) if detail is None else detail, dtype=pl.String)
    return pl.DataFrame({"id": ids, "reason": pl.Series([reason] * len(ids), dtype=pl.String), "detail": details})


def coerce(value: Any, annotation: Any, name: str) -> Any:
    """A parameter from the command line (a string) as the constructor's annotated type."""
    if not isinstance(value, str):
        return value
    text = str(annotation)
    if value.lower() in ("none", "null") and "None" in text:
        return None
    try:
        if text.startswith("bool") or annotation is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if text.startswith("int") or annotation is int:
            return int(value)
        if text.startswith("float") or annotation is float:
            return float(value)
    except ValueError:
        raise BadUsage(f"parameter {name}={value!r}: expected {text}") from None
    return value


KINDS = ("rank", "set", "filter", "annotate")  # how a chain applies the budget to a step (pipeline.py)


class Selector(ABC):
    """Base of every strategy. Subclasses declare their parameters as keyword arguments of
    `__init__` and store them unchanged (scikit-learn's rule), so `get_params` can list them,
    and check them in `_check_params`, which `fit` runs first (through `_prepare`).

    A strategy's `kind` comes from its class statement, one way for all: the bases below
    declare it (`RankSelector`, `SetSelector`, `FilterSelector`, `AnnotateSelector`), and a
    strategy with its own `fit` and `select` names it, `class X(Selector, kind="rank")`."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""  # one of KINDS
    needs_response: ClassVar[bool] = False  # SFT selectors drop rows without a response
    uses_model: ClassVar[bool] = False  # reads --model
    cacheable: ClassVar[bool] = False  # per-example scores that depend only on the example
    scores_on_fit: ClassVar[bool] = True  # `fit` learns a score per example (what `curate score` stores)

    scores_: np.ndarray
    support_: np.ndarray

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            raise TypeError(f"{cls.__name__}: declare the kind in the class statement, "
                            f"class {cls.__name__}(..., kind=...)")
        if kind is not None:
            if kind not in KINDS:
                raise TypeError(f"{cls.__name__}: kind {kind!r} is not one of {', '.join(KINDS)}")
            cls.kind = kind

    # -- parameters (scikit-learn conventions) -------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p for p in signature.parameters if p != "self"]

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Selector:
        signature = inspect.signature(cls.__init__)
        accepted = {n: p for n, p in signature.parameters.items() if n != "self"}
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise BadUsage(f"strategy {cls.name} has no parameter {', '.join(unknown)}",
                           hint=f"{cls.name} takes: " + (", ".join(accepted) or "no parameters"))
        hints = _annotations(cls)
        return cls(**{k: coerce(v, hints.get(k, accepted[k].annotation), f"{cls.name}.{k}") for k, v in params.items()})

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    # -- the protocol ---------------------------------------------------------------------
    @abstractmethod
    def fit(self, pool) -> Selector:  # pool: curate.selectors.pool.Pool
        """Compute what selection needs (scores, embeddings) from the pool."""

    @abstractmethod
    def select(self, budget: int | None = None) -> Selection:
        """Keep up to `budget` rows (all that qualify when None) and say why the others went."""

    def get_support(self, indices: bool = False) -> np.ndarray:
        """The kept mask over the pool (or the kept positions, in selection order)."""
        if not hasattr(self, "support_"):
            raise RuntimeError(f"{type(self).__name__}: call select() before get_support()")
        if indices:
            return self.order_.copy()
        return self.support_.copy()

    # -- helpers for subclasses ----------------------------------------------------------
    def _check_params(self) -> None:
        """Refuse parameters that cannot work (BadUsage naming `strategy.param`); runs before any scoring."""

    def _prepare(self, pool) -> None:
        """Common fit-time state: the parameters checked, the pool, and which rows cannot be scored at all."""
        self._check_params()
        self.pool_ = pool
        self.ids_ = pool.ids
        self.invalid_ = empty_dropped()
        self.valid_ = np.ones(pool.rows, dtype=bool)
        if self.needs_response:
            missing = pool.missing_responses()
            if missing.all():
                raise BadInput(f"{self.name} needs responses, and none of the {pool.rows:,} rows of {pool.label} has one",
                               hint="this looks like a prompt-only (RL) set; use an RL strategy or ingest responses")
            if missing.any():
                self.valid_ &= ~missing
                self.invalid_ = dropped_rows(pool.ids.filter(pl.Series(missing)), MISSING_RESPONSE,
                                             ["the response is empty"] * int(missing.sum()))

    def _finish(self, order: np.ndarray, kept_scores: np.ndarray, dropped: list[pl.DataFrame],
                **extra: Any) -> Selection:
        order = np.asarray(order, dtype=np.int64)
        self.order_ = order
        self.support_ = np.zeros(self.pool_.rows, dtype=bool)
        self.support_[order] = True
        kept = pl.DataFrame({"id": self.ids_.gather(order) if len(order) else pl.Series([], dtype=pl.String),
                             "score": np.asarray(kept_scores, dtype=np.float64),
                             "rank": np.arange(len(order), dtype=np.int64)})
        frames = [self.invalid_, *[d for d in dropped if d.height]]
        return Selection(self.name, kept, pl.concat(frames) if frames else empty_dropped(),
                         params=self.get_params(), model_id=getattr(self, "model_id_", None),
                         model_hash=getattr(self, "model_hash_", None), **extra)


class RankSelector(Selector, kind="rank"):
    """Scores each example on its own; `select(budget)` keeps the best `budget`.

    Subclasses implement `_score(pool) -> np.ndarray` (NaN where no score exists) and set
    `higher_is_better`. NaN scores are excluded and dropped with reason `nan_score`.
    """

    higher_is_better: bool = True

    def fit(self, pool) -> RankSelector:
        self._prepare(pool)
        scores = np.full(pool.rows, np.nan)
        scores[self.valid_] = self._score(pool, self.valid_)[self.valid_]
        self.scores_ = scores
        return self

    @abstractmethod
    def _score(self, pool, valid: np.ndarray) -> np.ndarray:
        """One score per pool row (NaN where none exists); rows outside `valid` are ignored."""

    def _eligible(self) -> tuple[np.ndarray, list[pl.DataFrame]]:
        """Positions that may be kept, and drop rows for NaN scores."""
        nan = self.valid_ & np.isnan(self.scores_)
        drops = [dropped_rows(self.ids_.filter(pl.Series(nan)), NAN_SCORE, ["the score is NaN"] * int(nan.sum()))]
        return np.flatnonzero(self.valid_ & ~nan), drops

    def select(self, budget: int | None = None) -> Selection:
        eligible, drops = self._eligible()
        drops += self._extra_drops(eligible)
        eligible = self._filter(eligible)
        reasons = {}
        for frame in drops:
            for reason, count in frame["reason"].value_counts().iter_rows():
                reasons[reason] = reasons.get(reason, 0) + count
        budget = check_budget(budget, len(eligible), self.name, len(self.scores_), reasons)
        values = self.scores_[eligible]
        key = -values if self.higher_is_better else values
        order = eligible[np.lexsort((eligible, key))]  # best first; ties to the earlier row
        kept, rest = order[:budget], order[budget:]
        if len(rest):
            drops.append(dropped_rows(self.ids_.gather(rest), BUDGET,
                                      [f"score {v:.6g}, rank {r + budget}" for r, v in enumerate(self.scores_[rest])]))
        scores = pl.DataFrame({"id": self.ids_, "value": self.scores_})
        return self._finish(kept, self.scores_[kept], drops, scores=scores)

    def _extra_drops(self, eligible: np.ndarray) -> list[pl.DataFrame]:
        """Strategy-specific drops among eligible rows (e.g. IFD > 1)."""
        return []

    def _filter(self, eligible: np.ndarray) -> np.ndarray:
        return eligible


class SetSelector(Selector, kind="set"):
    """A set function maximised greedily; `select(budget)` runs the greedy to `budget` picks."""


class FilterSelector(Selector, kind="filter"):
    """Drops examples that fail a test and keeps the rest in pool order; the budget does not apply."""


class AnnotateSelector(Selector, kind="annotate"):
    """Keeps every example and adds to it (token masks); the budget does not apply."""


def check_budget(budget: int | None, available: int, strategy: str, pool_rows: int,
                 reasons: dict[str, int] | None = None) -> int:
    """The budget as a count of examples; an error when it is larger than what can be kept.

    `reasons` counts the rows that cannot be kept by why (a NaN score, the strategy's own rule such as
    `ifd_above_1`), so the message says where they went."""
    if budget is None:
        return available
    if budget < 0:
        raise BadUsage(f"budget must be positive, got {budget}")
    if budget > available:
        lost = pool_rows - available
        named = {k: v for k, v in (reasons or {}).items() if v}
        unnamed = lost - sum(named.values())
        if unnamed > 0:
            named["no valid score"] = unnamed
        parts = ", ".join(f"{reason} {count:,}" for reason, count in named.items())
        why = f" ({lost:,} of its {pool_rows:,} rows cannot be kept: {parts})" if lost else ""
        raise BadUsage(f"budget {budget:,} is larger than the pool: {strategy} can keep at most {available:,} rows{why}",
                       hint=f"pass --budget {available:,} or less")
    return budget


BUDGET_FORMS = "a count (a whole number, e.g. 500), a fraction in (0, 1] (e.g. 0.1; 1.0 is every row) or a percentage (10%)"


def parse_budget(value: str | float | None, rows: int, option: str = "--budget") -> int | None:
    """A budget as a number of examples out of `rows`, or None for no budget.

    The spelling decides what a number means:
    - a whole number (the int 500, the text "500"): a count of examples, at least 1;
    - a number with a decimal point or an exponent (0.1, "0.1", "1.0", "5e-2"): a fraction of
      the rows, in (0, 1]; 1.0 is every row, while "1" is one row;
    - "N%", N in (0, 100]: N/100 of the rows.
    A fraction keeps floor(fraction x rows) examples, and at least one. Zero, negatives, NaN,
    infinities, booleans, a fraction above 1 and any other text are errors naming `option`.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    hint = f"write {BUDGET_FORMS}"
    if isinstance(value, (bool, np.bool_)):
        raise BadUsage(f"{option} {value!r} is not a budget", hint=hint)
    if isinstance(value, (int, np.integer)):
        count = int(value)
    elif isinstance(value, (float, np.floating)):
        return _fraction_of(_number(repr(float(value)), option, str(value), hint), rows, option, str(value), hint)
    else:
        text = str(value).strip()
        if text.endswith("%"):
            number = _number(text[:-1], option, text, hint)
            if not 0 < number <= 100:
                raise BadUsage(f"{option} {text}: a percentage must be in (0, 100]", hint=hint)
            return _fraction_of(number / 100, rows, option, text, hint)
        try:
            count = int(text)
        except ValueError:
            return _fraction_of(_number(text, option, text, hint), rows, option, text, hint)
    if count < 1:
        raise BadUsage(f"{option} {value}: a budget must be at least 1 example", hint=hint)
    return count


def _number(text: str, option: str, shown: str, hint: str) -> Fraction:
    """The decimal as written, exactly (so 29% of 100 rows is 29, not floor(28.999...))."""
    try:
        number = float(text)
    except ValueError:
        raise BadUsage(f"{option} {shown!r} is not a number", hint=hint) from None
    if not math.isfinite(number):
        raise BadUsage(f"{option} {shown}: a budget must be a finite number", hint=hint)
    return Fraction(text.strip())


def _fraction_of(fraction: Fraction, rows: int, option: str, shown: str, hint: str) -> int:
    if fraction <= 0:
        raise BadUsage(f"{option} {shown}: a budget must be positive", hint=hint)
    if fraction > 1:
        whole = f"; for a count of {int(fraction):,} write {int(fraction)}" if fraction.denominator == 1 else ""
        raise BadUsage(f"{option} {shown}: a fraction must be in (0, 1]{whole}", hint=hint)
    return max(1, math.floor(fraction * rows))


def _annotations(cls: type) -> dict[str, Any]:
    try:
        import typing

        return typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):  # annotations that cannot be resolved: fall back to the raw ones
        return {}
