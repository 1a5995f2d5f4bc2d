"""The prompt ledger: every rollout, and per-prompt statistics that outlive training runs.

`record_rollouts` is idempotent: a rollout's id is derived from (model key, run, step,
prompt, sample index), rows already in the catalog are skipped, and the statistics are
updated from the newly inserted rows only, in the same transaction. A run killed
mid-step and resumed therefore neither loses nor double-counts rollouts.

Per prompt and model key the ledger keeps attempts, successes, reward sum and sum of
squares (so mean and variance), a Beta posterior over the pass rate, and the streak
of consecutive sampled groups that were all right, or all wrong (GRESO's zero-variance
history; the two kinds keep separate streaks, so an all-wrong group after all-right ones
starts a new streak of 1). The posterior follows MoPPS (Qu et al. 2025, arXiv 2507.04632): per update
alpha <- decay * alpha + (1 - decay) * alpha0 + successes, and likewise beta with the
failures, from a Beta(alpha0=1, beta0=1) prior: old evidence fades toward the prior as
the policy moves; decay = 1 keeps plain counts.

A success is the rollout's `success` flag when the trainer gives one (the outcome reward,
e.g. `math`, passing the success threshold, not the shaped sum), else reward >= the
threshold; a group is "all right" or "all wrong" by the same test when flags are given,
else by equal rewards.

Ledger keys name a policy *and* the reward that scored it: `ledger_key(policy, rewards)`
is `POLICY#SPEC`, SPEC being the reward names with their weights (`math`,
`0.2*format+math`) and, when it is not 0.5, the success threshold (`math;pass>=0.8`).
Statistics of one prompt under two reward specifications never mix, and a prompt sampled
under one is not "already sampled" under another. Keys written before this rule have no
`#SPEC`; they stay readable under their own name and new runs do not add to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import polars as pl
import xxhash

from curate.catalog.workspace import Workspace, query_frame
from curate.errors import BadUsage

PRIOR = 1.0
SUCCESS_THRESHOLD = 0.5
KEY_SEPARATOR = "#"
STATS_COLUMNS = ("prompt_id", "model_key", "attempts", "successes", "reward_sum", "reward_sq_sum", "reward_mean",
                 "reward_var", "alpha", "beta", "last_seen", "last_step", "zero_var_streak", "last_group_mean")


@dataclass
class Rollout:
    prompt_id: str
    model_key: str
    completion: str
    reward: float | None
    length: int
    truncated: bool = False
    run: str | None = None
    step: int | None = None
    sample_idx: int = 0
    dataset: str | None = None
    grader: str | None = None  # the reward's grader when it can vary (math: math-verify or string-match)
    success: bool | None = None  # the outcome passed the threshold (None: judge the reward; not stored)

    @property
    def rollout_id(self) -> str:
        key = f"{self.model_key}\x1f{self.run}\x1f{self.step}\x1f{self.prompt_id}\x1f{self.sample_idx}"
        return xxhash.xxh3_128_hexdigest(key.encode())


def _number(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def reward_spec(rewards: Sequence[tuple[str, float]], success_threshold: float = SUCCESS_THRESHOLD,
                outcome: str | None = None) -> str:
    """Canonical text of what turns completions into ledger statistics: the reward names with their
    weights (a weight of 1 is not written), sorted, as the weighted sum does not depend on the order;
    then the success threshold when it is not the default, and, among several rewards, the outcome
    reward that decides success (`;outcome=math`)."""
    if not rewards:
        raise ValueError("a reward specification needs at least one reward")
    terms = sorted((name, float(weight)) for name, weight in rewards)
    spec = "+".join(name if weight == 1 else f"{_number(weight)}*{name}" for name, weight in terms)
    spec = spec if success_threshold == SUCCESS_THRESHOLD else f"{spec};pass>={_number(success_threshold)}"
    return f"{spec};outcome={outcome}" if outcome is not None and len(terms) > 1 else spec


def ledger_key(policy: str, rewards: Sequence[tuple[str, float]], success_threshold: float = SUCCESS_THRESHOLD,
               outcome: str | None = None) -> str:
    """`POLICY#SPEC`: the key rollouts of `policy` scored by `rewards` are kept under.

    A `policy` that already ends in this `#SPEC` is returned as it is; one that names another
    specification is refused, as it would mix the two."""
    spec = reward_spec(rewards, success_threshold, outcome)
    base, separator, given = policy.partition(KEY_SEPARATOR)
    if not separator:
        return f"{policy}{KEY_SEPARATOR}{spec}"
    if given == spec:
        return policy
    raise BadUsage(f"model key {policy!r} names the reward specification {given!r}, but this run scores with {spec!r}",
                   hint=f"pass --model-key {base} (the ledger key becomes {base}{KEY_SEPARATOR}{spec})")


def match_key(keys: Sequence[str], wanted: str) -> str:
    """`wanted` when the ledger has it, else the one key `wanted#SPEC` among `keys` (a policy sampled
    under one reward specification); several such keys must be told apart."""
    if wanted in keys or KEY_SEPARATOR in wanted:
        return wanted
    under = sorted(k for k in keys if k.startswith(wanted + KEY_SEPARATOR))
    if len(under) > 1:
        raise BadUsage(f"model key {wanted!r} has rollouts under {len(under)} reward specifications: "
                       + ", ".join(under), hint="name one of these keys in full")
    return under[0] if under else wanted


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def record_rollouts(
    ws: Workspace, rollouts: Sequence[Rollout], success_threshold: float = 0.5, decay: float = 1.0
) -> int:
    """Insert the rollouts not yet recorded and update `prompt_stats` from them; returns how many were new.

    Rollouts of one prompt at one step form a group: its rewards update the statistics once,
    and an all-equal group extends that prompt's zero-variance streak (any other group resets it).
    A reward of None is stored but counts in no statistic. `decay` is MoPPS's λ for the Beta posterior.
    """
    if not 0 < decay <= 1:
        raise BadUsage(f"decay must be in (0, 1], got {decay}", hint="--param decay=0.9 (1 keeps plain counts)")
    if not rollouts:
        return 0
    now = _now()
    frame = pl.DataFrame([{**asdict(r), "rollout_id": r.rollout_id} for r in rollouts],
                         schema_overrides={"reward": pl.Float64, "step": pl.Int64, "run": pl.String,
                                           "dataset": pl.String, "grader": pl.String, "success": pl.Boolean})
    frame = frame.unique("rollout_id", keep="first", maintain_order=True)
    with ws.transaction() as con:
        con.register("_incoming", frame.to_arrow())
        fresh = query_frame(con, "SELECT * FROM _incoming WHERE rollout_id NOT IN (SELECT rollout_id FROM rollouts)")
        con.unregister("_incoming")
        if fresh.height == 0:
            return 0
        rows = fresh.select("rollout_id", "prompt_id", "dataset", "model_key", "run", "step", "sample_idx",
                            "completion", "reward", "length", "truncated", pl.lit(now).alias("created_at"), "grader")
        con.register("_fresh", rows.to_arrow())
        con.execute(f"INSERT INTO rollouts ({', '.join(rows.columns)}) SELECT * FROM _fresh")
        con.unregister("_fresh")
        keys = fresh.select("prompt_id", "model_key").unique()
        con.register("_keys", keys.to_arrow())
        old = query_frame(con, "SELECT s.* FROM prompt_stats s JOIN _keys k USING (prompt_id, model_key)")
        con.unregister("_keys")
        updated = _update_stats(old, fresh, success_threshold, decay, now)
        con.register("_stats", updated.select(STATS_COLUMNS).to_arrow())
        con.execute("DELETE FROM prompt_stats WHERE (prompt_id, model_key) IN (SELECT prompt_id, model_key FROM _stats)")
        con.execute("INSERT INTO prompt_stats SELECT * FROM _stats")
        con.unregister("_stats")
    return fresh.height


def _update_stats(old: pl.DataFrame, fresh: pl.DataFrame, threshold: float, decay: float,
                  now: datetime) -> pl.DataFrame:
    state = {(r["prompt_id"], r["model_key"]): r for r in old.to_dicts()}
    groups = (fresh.filter(pl.col("reward").is_not_null() & pl.col("reward").is_not_nan())
              .group_by("prompt_id", "model_key", "step", maintain_order=True)
              .agg(pl.col("reward"), pl.col("success"))
              .sort("step", nulls_last=False, maintain_order=True))
    for group in groups.iter_rows(named=True):
        key = (group["prompt_id"], group["model_key"])
        row = state.get(key) or {"prompt_id": key[0], "model_key": key[1], "attempts": 0, "successes": 0.0,
                                 "reward_sum": 0.0, "reward_sq_sum": 0.0, "alpha": PRIOR, "beta": PRIOR,
                                 "last_step": None, "zero_var_streak": 0, "last_group_mean": None}
        rewards = group["reward"]
        flags = [r >= threshold if s is None else bool(s) for r, s in zip(rewards, group["success"])]
        wins = float(sum(flags))
        row["attempts"] += len(rewards)
        row["successes"] += wins
        row["reward_sum"] += sum(rewards)
        row["reward_sq_sum"] += sum(r * r for r in rewards)
        row["alpha"] = decay * row["alpha"] + (1 - decay) * PRIOR + wins
        row["beta"] = decay * row["beta"] + (1 - decay) * PRIOR + (len(rewards) - wins)
        given = any(s is not None for s in group["success"])
        flat = wins in (0, len(flags)) if given else max(rewards) == min(rewards)
        easy = wins == len(flags) if given else min(rewards) >= threshold
        # last_group_mean is a success rate when flags are given, a reward mean otherwise
        was_easy = row["last_group_mean"] is not None and row["last_group_mean"] >= (0.5 if given else threshold)
        same_kind = row["zero_var_streak"] > 0 and was_easy == easy
        row["zero_var_streak"] = (row["zero_var_streak"] + 1 if same_kind else 1) if flat else 0
        row["last_group_mean"] = wins / len(flags) if given else sum(rewards) / len(rewards)
        row["last_step"] = group["step"] if group["step"] is not None else row["last_step"]
        row["last_seen"] = now
        state[key] = row
    for key in {(p, m) for p, m in fresh.select("prompt_id", "model_key").iter_rows()} - set(state):
        state[key] = {"prompt_id": key[0], "model_key": key[1], "attempts": 0, "successes": 0.0, "reward_sum": 0.0,
                      "reward_sq_sum": 0.0, "alpha": PRIOR, "beta": PRIOR, "last_step": None, "zero_var_streak": 0,
                      "last_seen": now, "last_group_mean": None}
    out = []
    for row in state.values():
        n = row["attempts"]
        mean = row["reward_sum"] / n if n else None
        var = max(0.0, row["reward_sq_sum"] / n - mean * mean) if n else None
        out.append({**row, "reward_mean": mean, "reward_var": var, "last_seen": row.get("last_seen", now)})
    return pl.DataFrame(out, schema_overrides={"last_step": pl.Int64, "reward_mean": pl.Float64,
                                               "reward_var": pl.Float64, "successes": pl.Float64,
                                               "last_group_mean": pl.Float64, "zero_var_streak": pl.Int32})


def read_stats(ws: Workspace, model_key: str | None = None) -> pl.DataFrame:
    """The ledger's per-prompt statistics (all model keys unless one is given)."""
    with ws.catalog() as con:
        if model_key is None:
            return query_frame(con, "SELECT * FROM prompt_stats ORDER BY prompt_id, model_key")
        return query_frame(con, "SELECT * FROM prompt_stats WHERE model_key = ? ORDER BY prompt_id", [model_key])


def read_rollouts(ws: Workspace, model_key: str | None = None, run: str | None = None) -> pl.DataFrame:
    sql, params = "SELECT * FROM rollouts WHERE 1=1", []
    if model_key is not None:
        sql, params = sql + " AND model_key = ?", params + [model_key]
    if run is not None:
        sql, params = sql + " AND run = ?", params + [run]
    with ws.catalog() as con:
        return query_frame(con, sql + " ORDER BY run, step, prompt_id, sample_idx", params)
