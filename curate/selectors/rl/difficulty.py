"""`difficulty`: prompt-difficulty curricula read from the prompt ledger.

Modes (the rules themselves, with their papers, are in `difficulty_rules`):
- band: keep prompts whose pass rate is in [lo, hi] (unseen prompts too, unless
  keep_unseen=False); with a budget, a seeded uniform sample of them;
- thompson: MoPPS: a random candidate batch of `candidate_ratio` x budget prompts, one
  draw from each candidate's Beta posterior, keep the `budget` draws closest to `target`;
- greso: GRESO's pre-rollout skipping by zero-variance streak, then a seeded sample of
  `budget` among the prompts not skipped;
- adarft: keep the `budget` prompts whose static difficulty (a reference model's failure
  rate, `reference=MODEL_KEY`, or the data's `difficulty` field) is closest to the target
  difficulty `adarft_target`; prompts without one are left out (`no_difficulty`).

`pick_prompts` is what both this selector and `curate loop` call, on arrays taken from
the ledger by `ledger_view`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl

from curate.catalog.ledger import match_key
from curate.catalog.workspace import Workspace, query_frame
from curate.errors import BadUsage
from curate.selectors.rl import difficulty_rules as rules
from curate.selectors.base import BUDGET, Selection, Selector, check_budget, coerce, dropped_rows

MODES = ("band", "thompson", "greso", "adarft", "uniform")


@dataclass
class LedgerView:
    """Ledger columns aligned with a list of prompt ids (unseen prompts get the prior)."""

    ids: pl.Series
    attempts: np.ndarray
    successes: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    streak: np.ndarray
    last_mean: np.ndarray
    static_difficulty: np.ndarray | None = None  # AdaRFT's frozen difficulty (NaN: none known)

    @property
    def pass_rate(self) -> np.ndarray:
        return np.divide(self.successes, self.attempts, out=np.full(len(self.ids), np.nan), where=self.attempts > 0)

    @property
    def difficulty(self) -> np.ndarray:
        return 1.0 - self.alpha / (self.alpha + self.beta)


def ledger_model_keys(ws: Workspace, ids: pl.Series) -> list[str]:
    with ws.catalog() as con:
        con.register("_ids", pl.DataFrame({"prompt_id": ids}).to_arrow())
        frame = query_frame(con, "SELECT DISTINCT model_key FROM prompt_stats JOIN _ids USING (prompt_id) ORDER BY 1")
        con.unregister("_ids")
    return frame["model_key"].to_list() if frame.height else []


def resolve_model_key(ws: Workspace, ids: pl.Series, model_key: str | None) -> str:
    """The given key (a policy's key stands for its one `KEY#REWARD`), or the only key the ledger has
    for these prompts."""
    keys = ledger_model_keys(ws, ids)
    if model_key:
        return match_key(keys, model_key)
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise BadUsage("the ledger has no rollouts for these prompts",
                       hint="run `curate rollouts NAME --model M` first, or pass model_key")
    raise BadUsage(f"the ledger has rollouts of these prompts under {len(keys)} model keys: {', '.join(keys)}",
                   hint="pick one with --param difficulty.model_key=KEY")


def ledger_columns(ws: Workspace, ids: pl.Series, model_key: str, columns: list[str]) -> pl.DataFrame:
    """`prompt_stats` columns under `model_key`, one row per id in order (nulls where the ledger has none)."""
    with ws.catalog() as con:
        con.register("_ids", pl.DataFrame({"prompt_id": ids.cast(pl.String)}).with_row_index("_pos").to_arrow())
        frame = query_frame(con, f"SELECT _pos, {', '.join(columns)} FROM _ids LEFT JOIN prompt_stats s "
                                 "ON s.prompt_id = _ids.prompt_id AND s.model_key = ? ORDER BY _pos", [model_key])
        con.unregister("_ids")
    return frame


DIFFICULTY_FIELD = pl.col("meta").str.json_path_match("$.difficulty").cast(pl.Float64, strict=False)  # data's own


def difficulty_field(version, ids: pl.Series) -> pl.Series | None:
    """The data's `difficulty` field (kept in `meta` at ingest) for `ids`, in order; None when no row has one."""
    if "meta" not in version.columns:
        return None
    frame = version.scan().select("id", DIFFICULTY_FIELD.alias("difficulty")).collect()
    aligned = pl.DataFrame({"id": ids.cast(pl.String)}).join(frame, on="id", how="left", maintain_order="left")
    return None if aligned["difficulty"].null_count() == len(aligned) else aligned["difficulty"]


def static_difficulty(ws: Workspace, ids: pl.Series, reference: str | None,
                      column: pl.Series | None = None) -> np.ndarray:
    """AdaRFT's difficulty per prompt, frozen for the run: 1 - pass rate under the `reference` ledger key,
    else the data's `difficulty` field (0..1 as is, 0..100 as the paper writes it, divided by 100);
    NaN where unknown."""
    if reference:
        view = ledger_view(ws, ids, resolve_model_key(ws, ids, reference))
        return 1.0 - view.pass_rate
    if column is None:
        return np.full(len(ids), np.nan)
    values = column.cast(pl.Float64, strict=False).to_numpy().astype(np.float64)
    finite = values[~np.isnan(values)]
    if len(finite) and (finite.min() < 0 or finite.max() > 100):
        raise BadUsage(f"the difficulty column holds values from {finite.min():g} to {finite.max():g}",
                       hint="give difficulties in 0..1 (1 - pass rate) or 0..100 (AdaRFT's scale)")
    return values / 100.0 if len(finite) and finite.max() > 1 else values


def decayed_posterior(ws: Workspace, ids: pl.Series, model_key: str, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """The Beta posterior with MoPPS's decay λ, replayed from the ledger's groups in order (`curate select
    --param decay=0.9` on rollouts recorded with another λ). A key whose successes came from an outcome
    among several rewards cannot be replayed (the flags are not stored)."""
    spec = model_key.partition("#")[2]
    if ";outcome=" in spec:
        raise BadUsage(f"decay cannot be replayed for {model_key}: its successes came from one reward among several",
                       hint="record the rollouts with the decay instead (curate loop --param decay=...)")
    threshold = float(spec.split(";pass>=")[1].split(";")[0]) if ";pass>=" in spec else 0.5
    with ws.catalog() as con:
        con.register("_ids", pl.DataFrame({"prompt_id": ids.cast(pl.String)}).to_arrow())
        groups = query_frame(con, "SELECT prompt_id, count(*) FILTER (WHERE reward >= ?) AS wins, count(reward) AS n, "
                                  "max(created_at) AS t, step, run FROM rollouts JOIN _ids USING (prompt_id) "
                                  "WHERE model_key = ? AND reward IS NOT NULL GROUP BY prompt_id, run, step "
                                  "ORDER BY t, step NULLS FIRST, run", [threshold, model_key])
        con.unregister("_ids")
    posterior = {}
    for pid, wins, n in groups.select("prompt_id", "wins", "n").iter_rows():
        alpha, beta = posterior.get(pid, (1.0, 1.0))
        posterior[pid] = (decay * alpha + (1 - decay) + wins, decay * beta + (1 - decay) + (n - wins))
    pairs = [posterior.get(pid, (1.0, 1.0)) for pid in ids.cast(pl.String).to_list()]
    return np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])


def ledger_view(ws: Workspace, ids: pl.Series, model_key: str) -> LedgerView:
    frame = ledger_columns(ws, ids, model_key, ["attempts", "successes", "alpha", "beta", "zero_var_streak",
                                                "last_group_mean"])

    def col(name: str, fill: float) -> np.ndarray:
        return frame[name].cast(pl.Float64).fill_null(fill).to_numpy()

    return LedgerView(ids, col("attempts", 0.0), col("successes", 0.0), col("alpha", 1.0), col("beta", 1.0),
                      col("zero_var_streak", 0.0).astype(int), frame["last_group_mean"].cast(pl.Float64).to_numpy())


@dataclass(frozen=True)
class CurriculumParams:
    """Every curriculum parameter, in one place: the `difficulty` selector's constructor takes its
    defaults from here, and `curate loop --param NAME=VALUE` sets these fields (`with_params`)."""

    lo: float = 0.1  # band: pass rates kept, [lo, hi]
    hi: float = 0.9
    keep_unseen: bool = True  # band: prompts without rollouts stay
    target: float = 0.5  # MoPPS target pass rate
    candidate_ratio: float = 16.0  # MoPPS: candidates drawn at random per pick, x the batch (reference ts_ratio)
    decay: float = 1.0  # MoPPS posterior decay λ the loop's ledger updates use (1: plain counts)
    floor: float = rules.GRESO_FLOOR  # GRESO minimum keep probability
    p_easy: float = 0.5  # GRESO keep probabilities (the loop updates them each step)
    p_hard: float = 0.5
    adarft_target: float = 0.5  # AdaRFT target difficulty (1 - pass rate; the loop moves it)
    greso_target_easy: float = rules.GRESO_TARGET_ZERO_VARIANCE / 3  # GRESO: target shares of all-right /
    greso_target_hard: float = rules.GRESO_TARGET_ZERO_VARIANCE * 2 / 3  # all-wrong groups (reference split)
    adarft_eta: float = 0.5  # AdaRFT's update of the target difficulty (loop)
    adarft_alpha: float = 2.0
    adarft_beta: float = 0.5
    reference: str | None = None  # AdaRFT: the ledger key whose pass rates give the static difficulty

    def with_params(self, values: dict[str, str]) -> CurriculumParams:
        """These parameters with `values` (NAME=VALUE strings from the command line) set."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise BadUsage(f"no curriculum parameter {', '.join(unknown)}", hint="parameters: " + ", ".join(names))
        types = {f.name: f.type for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{k: coerce(v, types[k], k) for k, v in values.items()})


def pick_prompts(mode: str, view: LedgerView, budget: int | None, params: CurriculumParams,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Positions of the chosen prompts (in order), and the positions dropped for each reason."""
    n = len(view.ids)
    everyone = np.arange(n)
    if mode == "uniform":
        return rng.permutation(n)[:budget], {}
    if mode == "band":
        inside = rules.band_mask(np.nan_to_num(view.pass_rate), view.attempts, params.lo, params.hi, params.keep_unseen)
        eligible = rng.permutation(np.flatnonzero(inside))
        return eligible[:budget], {"outside_band": everyone[~inside]}
    if mode == "greso":
        state = rules.GresoState(params.p_easy, params.p_hard)
        skipped = rules.greso_skip(view.streak, view.last_mean, state, params.floor, rng)
        eligible = rng.permutation(np.flatnonzero(~skipped))
        return eligible[:budget], {"greso_skip": everyone[skipped]}
    if budget is None:
        raise BadUsage(f"difficulty mode {mode} needs a budget", hint="pass --budget N")
    if mode == "thompson":
        ratio = params.candidate_ratio if params.candidate_ratio > 0 else None
        return rules.thompson_pick(view.alpha, view.beta, budget, params.target, rng, ratio), {}
    if mode == "adarft":
        if view.static_difficulty is None or np.all(np.isnan(view.static_difficulty)):
            raise BadUsage("adarft ranks prompts by a difficulty estimated beforehand, and none is known",
                           hint="run `curate rollouts NAME --model REF --model-key ref` and pass "
                                "--param reference=ref, or give the data a difficulty field (0..1 or 0..100)")
        unknown = everyone[np.isnan(view.static_difficulty)]
        return rules.adarft_pick(view.static_difficulty, params.adarft_target, budget, rng), {"no_difficulty": unknown}
    raise BadUsage(f"unknown difficulty mode {mode!r}", hint="modes: " + ", ".join(MODES))


class DifficultySelector(Selector, kind="rank"):
    name: ClassVar[str] = "difficulty"

    def __init__(self, mode: str = "band", model_key: str | None = None, lo: float = CurriculumParams.lo,
                 hi: float = CurriculumParams.hi, keep_unseen: bool = CurriculumParams.keep_unseen,
                 target: float = CurriculumParams.target, floor: float = CurriculumParams.floor,
                 p_easy: float = CurriculumParams.p_easy, p_hard: float = CurriculumParams.p_hard,
                 adarft_target: float = CurriculumParams.adarft_target,
                 candidate_ratio: float = CurriculumParams.candidate_ratio, reference: str | None = None,
                 decay: float | None = None):
        self.mode = mode
        self.model_key = model_key
        self.lo = lo
        self.hi = hi
        self.keep_unseen = keep_unseen
        self.target = target
        self.floor = floor
        self.p_easy = p_easy
        self.p_hard = p_hard
        self.adarft_target = adarft_target
        self.candidate_ratio = candidate_ratio
        self.reference = reference
        self.decay = decay

    def _check_params(self) -> None:
        if self.mode not in MODES:
            raise BadUsage(f"unknown difficulty mode {self.mode!r}", hint="modes: " + ", ".join(MODES))
        if self.decay is not None and not 0 < self.decay <= 1:
            raise BadUsage(f"difficulty.decay must be in (0, 1], got {self.decay}", hint="--param decay=0.9")

    def fit(self, pool) -> DifficultySelector:
        self._prepare(pool)
        if pool.ws is None:
            raise BadUsage("the difficulty strategy reads the prompt ledger: it needs a dataset in a workspace")
        self.model_key_ = resolve_model_key(pool.ws, pool.ids, self.model_key)
        self.view_ = ledger_view(pool.ws, pool.ids, self.model_key_)
        if self.decay is not None:  # the posterior with another λ than the one the rollouts were recorded with
            self.view_.alpha, self.view_.beta = decayed_posterior(pool.ws, pool.ids, self.model_key_, self.decay)
        if self.mode == "adarft":
            column = (pl.Series(pool.values(DIFFICULTY_FIELD, ["meta"])) if "meta" in pool.columns() else None)
            self.view_.static_difficulty = static_difficulty(pool.ws, pool.ids, self.reference, column)
        self.scores_ = self.view_.pass_rate
        return self

    def select(self, budget: int | None = None) -> Selection:
        view = self.view_
        params = CurriculumParams(lo=self.lo, hi=self.hi, keep_unseen=self.keep_unseen, target=self.target,
                                  floor=self.floor, p_easy=self.p_easy, p_hard=self.p_hard,
                                  adarft_target=self.adarft_target, candidate_ratio=self.candidate_ratio)
        rng = np.random.default_rng(self.pool_.seed)
        if budget is not None:
            check_budget(budget, len(view.ids), self.name, len(view.ids))
        order, reasons = pick_prompts(self.mode, view, budget, params, rng)
        if budget is not None and len(order) < budget:
            raise BadUsage(f"difficulty {self.mode}: only {len(order):,} prompts qualify, fewer than --budget {budget:,}",
                           hint=f"lower --budget to {len(order):,} or widen the band")
        drops = []
        accounted = np.zeros(len(view.ids), dtype=bool)
        accounted[order] = True
        for reason, positions in reasons.items():
            accounted[positions] = True
            if len(positions):
                drops.append(dropped_rows(view.ids.gather(positions), reason, _details(view, positions)))
        rest = np.flatnonzero(~accounted)
        if len(rest):
            drops.append(dropped_rows(view.ids.gather(rest), BUDGET, _details(view, rest)))
        self.stats_ = {"model_key": self.model_key_, "mode": self.mode,
                       "unseen": int(np.sum(view.attempts[order] == 0)),
                       **({"no_difficulty": len(reasons["no_difficulty"])} if "no_difficulty" in reasons else {})}
        scores = np.nan_to_num(view.pass_rate[order], nan=-1.0)
        return self._finish(order, scores, drops, stats=self.stats_)


def _details(view: LedgerView, positions: np.ndarray) -> list[str]:
    rates = view.pass_rate[positions]
    return [f"pass rate {r:.3f} over {int(a)} rollouts" if a else "no rollouts yet"
            for r, a in zip(rates, view.attempts[positions])]
