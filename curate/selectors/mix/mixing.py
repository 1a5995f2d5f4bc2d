"""`mixing`: domain weights, and a mixed dataset of a given size drawn by them (`curate mix`).

Methods:
- static: the user's weights (`weights="math=0.6,code=0.4"`);
- doremi: DoReMi's averaged exponentiated-gradient weights from the per-domain excess loss
  of a proxy against a reference (`curate.train.doremi`, Xie et al. 2023);
- progress: weights from measured learning progress in the ledger: per domain, the mean
  reward of its last `window` rollouts minus that of the `window` before (`rules.window_progress`),
  softmax-tempered (temperature in reward units) and smoothed (`rules.progress_weights`);
- natural: the dataset's own proportions (the baseline).

Domains come from the `domain` column, or from k-means clusters of embeddings named by
their frequent terms (`domains.domain_labels`). With budget N, each domain contributes its
weight's share of N rows by largest-remainder rounding (`rules.largest_remainder`),
sampled uniformly by seed; a domain of weight 0 gets none. Static weights are a contract:
when a domain has fewer rows than its share the mix is refused, naming the largest size the
weights fit exactly, unless `redistribute` is set. Learned weights (natural, doremi, progress)
always redistribute: what a small domain cannot supply goes to the other domains by weight,
and the achieved shares are reported beside the weights.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import polars as pl

from curate.catalog.workspace import query_frame
from curate.errors import BadUsage
from curate.selectors.mix import rules
from curate.selectors.base import BUDGET, Selection, SetSelector, dropped_rows
from curate.selectors.mix.domains import domain_labels
from curate.selectors.random_sample import hash_uniform

METHODS = ("static", "doremi", "progress", "natural")


def parse_weights(text: str | None) -> dict[str, float]:
    """`math=0.6,code=0.4` as {domain: weight}; a malformed item, a repeated domain, a negative or
    non-finite weight is an error naming it (weights need not sum to 1: they are normalised)."""
    out: dict[str, float] = {}
    example = "e.g. --weights math=0.6,code=0.4"
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BadUsage(f"weights: {part!r} is not DOMAIN=WEIGHT", hint=example)
        try:
            weight = float(value)
        except ValueError:
            raise BadUsage(f"weights: {part!r}: {value.strip()!r} is not a number", hint=example) from None
        if not math.isfinite(weight) or weight < 0:
            raise BadUsage(f"weights: {part!r}: a weight is a finite number >= 0", hint=example)
        if name in out:
            raise BadUsage(f"weights: domain {name!r} is given twice", hint=example)
        out[name] = weight
    return out


class MixingSelector(SetSelector):
    name: ClassVar[str] = "mixing"
    uses_model: ClassVar[bool] = True

    def __init__(self, method: str = "natural", weights: str | None = None, clusters: int = 0,
                 model_key: str | None = None, temperature: float = rules.PROGRESS_TEMPERATURE, smoothing: float = 0.1,
                 window: int = rules.PROGRESS_WINDOW, absolute: bool = False,
                 doremi_steps: int = 200, eta: float = 1.0, redistribute: bool = False):
        self.method = method
        self.weights = weights
        self.clusters = clusters
        self.model_key = model_key
        self.temperature = temperature
        self.smoothing = smoothing
        self.window = window
        self.absolute = absolute
        self.doremi_steps = doremi_steps
        self.eta = eta
        self.redistribute = redistribute

    def _check_params(self) -> None:
        if self.method not in METHODS:
            raise BadUsage(f"unknown mixing method {self.method!r}", hint="methods: " + ", ".join(METHODS))
        if self.method == "static" and not (self.weights or "").strip():
            raise BadUsage("static mixing needs weights", hint="pass --weights DOMAIN=WEIGHT,..., e.g. "
                                                               "--weights math=0.6,code=0.4")
        if self.method != "static" and self.weights:
            raise BadUsage(f"weights are only read by the static method, not by {self.method}",
                           hint="pass --method static with --weights, or drop --weights")
        if self.method == "static":
            parse_weights(self.weights)

    def fit(self, pool) -> MixingSelector:
        self._prepare(pool)
        given = parse_weights(self.weights) if self.method == "static" else {}
        self.codes_, self.domains_, self.domain_source_ = domain_labels(pool, self.clusters, pool.seed)
        counts = np.bincount(self.codes_, minlength=len(self.domains_))
        self.available_ = counts
        if self.method == "natural":
            self.weights_ = counts / counts.sum()
        elif self.method == "static":
            unknown = sorted(set(given) - set(self.domains_))
            if unknown:
                raise BadUsage(f"weights name unknown domains: {', '.join(unknown)}",
                               hint="domains: " + ", ".join(self.domains_))
            self.weights_ = rules.static_weights(given, self.domains_)
        elif self.method == "progress":
            self.weights_ = self._progress_weights(pool)
        else:
            self.weights_ = self._doremi_weights(pool)
        self.scores_ = self.weights_[self.codes_]
        return self

    def _progress_weights(self, pool) -> np.ndarray:
        from curate.selectors.rl.difficulty import resolve_model_key

        if pool.ws is None:
            raise BadUsage("progress weights read the ledger: they need a dataset in a workspace")
        key = resolve_model_key(pool.ws, pool.ids, self.model_key)
        with pool.ws.catalog() as con:
            con.register("_ids", pl.DataFrame({"prompt_id": pool.ids, "_code": self.codes_}).to_arrow())
            frame = query_frame(con, "SELECT _code, reward FROM rollouts JOIN _ids USING (prompt_id) "
                                     "WHERE model_key = ? AND reward IS NOT NULL "
                                     "ORDER BY created_at, run, step, sample_idx", [key])
            con.unregister("_ids")
        if self.window < 1:
            raise BadUsage(f"window must be >= 1 rollouts, got {self.window}", hint="--param window=64")
        gains = np.array([rules.window_progress(frame.filter(pl.col("_code") == code)["reward"].to_numpy(),
                                                self.window) for code in range(len(self.domains_))])
        self.gains_ = gains
        return rules.progress_weights(gains, self.temperature, self.smoothing, self.absolute)

    def _doremi_weights(self, pool) -> np.ndarray:
        from curate.train.doremi import DoReMiConfig, doremi_weights
        from curate.train.proxy import example_text

        if pool.ws is None or pool.version is None:
            raise BadUsage("doremi trains proxies on the dataset: it needs a dataset in a workspace")
        rng = np.random.default_rng(pool.seed)
        config = DoReMiConfig(steps=self.doremi_steps, eta=self.eta, seed=pool.seed)
        picked = np.zeros(pool.rows, dtype=bool)
        for code in range(len(self.domains_)):
            members = np.flatnonzero(self.codes_ == code)
            picked[rng.choice(members, size=min(config.max_examples_per_domain, len(members)), replace=False)] = True
        texts: list[list[str]] = [[] for _ in self.domains_]
        for frame in pool.iter_frames(["prompt", "response"], picked):
            for pos, p, r in zip(frame["_pos"].to_list(), frame["prompt"].to_list(), frame["response"].to_list()):
                texts[int(self.codes_[pos])].append(example_text(p, r))
        weights, history, stats = doremi_weights(
            pool.ws, pool.version, texts, config,
            progress=lambda step, alpha: pool.say("DoReMi proxy", step, config.steps))
        self.doremi_stats_ = stats
        return weights

    def _allocate(self, size: int) -> np.ndarray:
        """Rows per domain (see the module docstring); static weights that do not fit are an error."""
        basis = self.available_ if self.method == "natural" else self.weights_  # natural: exact counts
        exact = rules.largest_remainder(basis, size)
        if self.method == "static" and not self.redistribute and np.any(exact > self.available_):
            short = [f"{d} has {a:,} rows but its weight {w:.4g} of {size:,} needs {n:,}"
                     for d, w, a, n in zip(self.domains_, self.weights_, self.available_, exact) if n > a]
            limit = rules.exact_size_limit(self.weights_, self.available_, size)
            raise BadUsage(f"the weights do not fit the data: {'; '.join(short)}",
                           hint=f"the largest mix these weights fit exactly has {limit:,} rows; ask for that many, "
                                "lower those weights, or pass --redistribute to give what a domain lacks to the "
                                "other weighted domains")
        take = rules.allocate(basis, size, self.available_)
        if take.sum() < size:
            weighted = int(self.available_[np.asarray(basis) > 0].sum())
            raise BadUsage(f"the domains with a positive weight hold {weighted:,} rows, fewer than the {size:,} asked for",
                           hint=f"ask for {weighted:,} rows or fewer, or give more domains a weight")
        return take

    def select(self, budget: int | None = None) -> Selection:
        if budget is None:
            raise BadUsage("mixing needs the size of the mixed dataset", hint="pass --budget N")
        take = self._allocate(budget)
        order_key = hash_uniform(self.ids_, self.pool_.seed)
        kept, dropped = [], []
        for code, count in enumerate(take):
            members = np.flatnonzero(self.codes_ == code)
            members = members[np.argsort(order_key[members], kind="stable")]
            kept.append(members[:count])
            dropped.append(members[count:])
        order = np.concatenate(kept)
        order = order[np.argsort(order_key[order], kind="stable")]  # domains interleaved at random
        rest = np.concatenate(dropped)
        drops = [dropped_rows(self.ids_.gather(rest), BUDGET,
                              [f"domain {self.domains_[self.codes_[i]]} was full" for i in rest])] if len(rest) else []
        self.stats_ = {"method": self.method, "domain_source": self.domain_source_,
                       "weights": {d: round(float(w), 6) for d, w in zip(self.domains_, self.weights_)},
                       "available": {d: int(n) for d, n in zip(self.domains_, self.available_)},
                       "taken": {d: int(n) for d, n in zip(self.domains_, take)},
                       "shares": {d: round(int(n) / max(1, int(take.sum())), 6) for d, n in zip(self.domains_, take)}}
        if hasattr(self, "gains_"):
            self.stats_["progress_per_window"] = {d: float(g) for d, g in zip(self.domains_, self.gains_)}
        if hasattr(self, "doremi_stats_"):
            self.stats_["doremi"] = self.doremi_stats_
        return self._finish(order, self.weights_[self.codes_[order]], drops, stats=self.stats_)
