"""The closed loop (`curate loop`): the curriculum picks prompts from the ledger, GRPO trains
on them, and the fresh rollouts flow back into the ledger to steer the next pick.

Each round runs `steps_per_round` GRPO steps (`train_grpo`); at every step the curriculum
(thompson | band | greso | adarft | uniform; `curate.selectors.rl.schedule.StepCurriculum`)
picks the step's prompts from the ledger as it stands, GRPO rolls them out, scores them,
writes every rollout to the ledger (with the run's success threshold and MoPPS decay),
applies dynamic sampling / PODS and updates the policy, and the curriculum hears the step's
successes (GRESO's p_easy/p_hard and AdaRFT's target move per step, as in the papers).
`pick_every="round"` picks once per round instead (curate's earlier behaviour). After the
steps, the new model is evaluated on a held-out split (greedy decoding, the same reward) and
a row is appended to the run's metrics.

Resume after a crash (even SIGKILL): the loop's state (`loop.json`) is replaced atomically
after each round; a round's prompt selection is saved before its rollouts start; GRPO
checkpoints every step and names its ledger rows by (run, step, prompt, sample), so a
resumed round regenerates the interrupted step under the same ids and the ledger skips
what it already has; every pick and the curriculum's state after every step are saved in
the round's `picks.json` before they are used, so a resumed round repeats them. Nothing is
counted twice and nothing is lost.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.catalog.ledger import ledger_key
from curate.catalog.versions import DatasetVersion, resolve
from curate.catalog.workspace import Workspace, query_frame
from curate.errors import BadUsage
from curate.selectors.rl.difficulty import MODES, CurriculumParams, difficulty_field, ledger_view, static_difficulty
from curate.selectors.rl.schedule import (PICK_EVERY, CurriculumState, StepCurriculum, choose, group_shares,
                                          round_pool_size)
from curate.selectors.random_sample import hash_uniform
from curate.train.data import stream_slice

STATE = "loop.json"


@dataclass
class LoopConfig:
    rounds: int = 5
    strategy: str = "thompson"  # thompson | band | greso | adarft | uniform
    prompts_per_round: int = 16  # B: prompts per GRPO step
    steps_per_round: int = 2
    num_generations: int = 8
    max_completion_length: int = 128
    temperature: float = 1.0
    lr: float = 1e-5
    loss_type: str = "dapo"
    beta: float = 0.0
    dynamic_sampling: bool | None = None  # None: on for greso (GRESO skips on top of dynamic sampling)
    pick_every: str = "step"  # step | round: when the curriculum picks prompts
    filter_on: str = "auto"  # outcome | reward: what dynamic sampling tests (auto: outcome given a verifiable reward)
    success_threshold: float = 0.5  # a rollout succeeds when its outcome reward is >= this
    max_refills: int = 2
    pods_m: int | None = None
    mask_truncated_completions: bool = True  # off for tiny models that rarely finish (docs/rl.md)
    eval_fraction: float = 0.1  # share of the prompts held out (by a hash of their id)
    eval_size: int = 32  # at most this many held-out prompts are evaluated each round
    curriculum: CurriculumParams = field(default_factory=CurriculumParams)  # the strategy's parameters (--param)
    reward_weights: tuple[float, ...] | None = None  # one per reward (None: 1 each)
    model_key: str | None = None  # the policy's ledger key (default: the starting model's hash); + "#" + the reward
    template: str = "auto"
    dtype: str = "auto"
    seed: int = 0

    def check(self) -> None:
        if self.strategy not in MODES:
            raise BadUsage(f"unknown loop strategy {self.strategy!r}", hint="--strategy " + "|".join(MODES))
        for name in ("rounds", "prompts_per_round", "steps_per_round", "eval_size"):
            if getattr(self, name) < 1:
                raise BadUsage(f"--{name.replace('_', '-')} must be >= 1")
        if self.pick_every not in PICK_EVERY:
            raise BadUsage(f"unknown --pick-every {self.pick_every!r}", hint="--pick-every step|round")
        if not 0 < self.curriculum.decay <= 1:
            raise BadUsage(f"decay must be in (0, 1], got {self.curriculum.decay}", hint="--param decay=0.9")
        if not 0 < self.eval_fraction < 1:
            raise BadUsage(f"eval_fraction must be in (0, 1), not {self.eval_fraction}")  # no CLI option

    @property
    def uses_dynamic_sampling(self) -> bool:
        return self.strategy == "greso" if self.dynamic_sampling is None else self.dynamic_sampling


@dataclass
class LoopReport:
    out_dir: Path
    rows: list[dict[str, Any]]
    eval_before: float
    resumed_from: int
    model: str
    seconds: float
    state: dict[str, Any] = field(default_factory=dict)


def split_heldout(ids: pl.Series, fraction: float, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train positions, held-out positions): the held-out prompts are those with the smallest id hashes:
    the ones whose hash falls under `fraction`, at most `size`, and at least the smallest one (a small
    set can have no hash under the fraction by chance: 16 prompts at 0.1, one time in five)."""
    u = hash_uniform(ids, seed)
    count = min(size, max(1, int(np.count_nonzero(u < fraction)))) if len(ids) > 1 else 0
    heldout = np.argsort(u, kind="stable")[:count]
    train = np.setdiff1d(np.arange(len(ids)), heldout)
    if len(train) == 0 or len(heldout) == 0:
        raise BadUsage(f"cannot split {len(ids)} prompts into train and held-out parts",
                       hint=f"use a larger dataset: about {fraction:.0%} of the prompts are held out")
    return train, heldout


def _write_json(path: Path, payload: dict) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(temp, path)


def _rows_by_id(version: DatasetVersion, ids: list[str]) -> list[dict]:
    frame = (version.scan().filter(pl.col("id").is_in(pl.Series(ids, dtype=pl.String).implode()))
             .select([c for c in ("id", "prompt", "response", "answer", "tests", "domain", "meta")
                      if c in version.columns])
             .collect())
    by_id = {row["id"]: row for row in frame.to_dicts()}
    return [by_id[i] for i in ids if i in by_id]


def held_out_reward(model: str, rows: list[dict], rewards: list[str], config: LoopConfig) -> float:
    """Mean reward of greedy completions on `rows` (rows no reward scores are left out); several
    rewards count as GRPO trains on them, weighted and summed."""
    from curate.train.evaluate import evaluate
    from curate.train.rewards import weighted_reward

    reward = rewards[0] if len(rewards) == 1 and not config.reward_weights else weighted_reward(
        rewards, config.reward_weights)
    return evaluate(model, rows, ("reward",), reward, config.max_completion_length, config.template,
                    dtype=config.dtype).metrics["reward"]


def _ledger_key(model_key: str, rewards: list[str], weights: list[float], config: LoopConfig) -> str:
    from curate.train.rewards import outcome_index, reward_spec_name

    names = [reward_spec_name(r) for r in rewards]
    outcome = outcome_index(rewards)
    return ledger_key(model_key, list(zip(names, weights)), config.success_threshold,
                      names[outcome] if outcome is not None else None)


def _round_shares(ws: Workspace, model_key: str, run: str, k: int) -> tuple[float, float, int, int]:
    """Shares of this round's sampled groups that were all right / all wrong, the rollouts it spent,
    and how many distinct prompts it rolled out."""
    with ws.catalog() as con:
        frame = query_frame(con, "SELECT step, prompt_id, sample_idx // ? AS draw, min(reward) AS lo, "
                                 "max(reward) AS hi, count(*) AS n FROM rollouts WHERE model_key = ? AND run = ? "
                                 "GROUP BY ALL", [k, model_key, run])
    if frame.height == 0:
        return 0.0, 0.0, 0, 0
    easy = float(((frame["lo"] == frame["hi"]) & (frame["lo"] >= 0.5)).mean())
    hard = float(((frame["lo"] == frame["hi"]) & (frame["hi"] < 0.5)).mean())
    return easy, hard, int(frame["n"].sum()), frame["prompt_id"].n_unique()


class _RoundPicks:
    """`train_grpo`'s curriculum hook for one loop round: picks by prompt id from the ledger as it
    stands, and saves every pick and the state after every step in `picks.json`, so a resumed
    round repeats them (and does not update the state twice)."""

    def __init__(self, ws: Workspace, key: str, train_ids: pl.Series, curriculum: StepCurriculum,
                 difficulty: np.ndarray | None, config: LoopConfig, round_no: int, path: Path):
        self.ws, self.key, self.train_ids, self.curriculum = ws, key, train_ids, curriculum
        self.difficulty, self.config, self.round_no, self.path = difficulty, config, round_no, path
        self.log = json.loads(path.read_text()) if path.exists() else {"picks": {}, "observed": -1, "pool": None,
                                                                       "cursor": 0, "shares": []}
        if self.log.get("state"):
            curriculum.state = CurriculumState(**self.log["state"])
        self.successes: list[np.ndarray] = []

    def _choose(self, count: int, rng: np.random.Generator, exclude: list[str]) -> list[str]:
        view = ledger_view(self.ws, self.train_ids, self.key)
        view.static_difficulty = self.difficulty
        positions = {i: p for p, i in enumerate(self.train_ids.to_list())}
        order = choose(self.curriculum, view, count, rng, np.array([positions[i] for i in exclude], dtype=np.int64))
        return self.train_ids.gather(order).to_list()

    def pick(self, step: int, refill: int, count: int) -> list[str]:
        tag = f"{step}-{refill}"
        if tag not in self.log["picks"]:
            rng = np.random.default_rng([self.config.seed, self.round_no, step, refill])
            if self.curriculum.every == "step":
                earlier = [i for t, ids in self.log["picks"].items() if t.startswith(f"{step}-") for i in ids]
                self.log["picks"][tag] = self._choose(count, rng, earlier)
            else:
                if self.log["pool"] is None:
                    want = round_pool_size(self.config.prompts_per_round, self.config.uses_dynamic_sampling,
                                           self.config.max_refills)
                    self.log["pool"] = self._choose(min(want, len(self.train_ids)), rng, [])
                pool = self.log["pool"]
                self.log["picks"][tag] = [pool[i] for i in stream_slice(len(pool), self.config.seed + self.round_no,
                                                                        self.log["cursor"], count)]
                self.log["cursor"] += count
            _write_json(self.path, self.log)
        return self.log["picks"][tag]

    def observe(self, step: int, successes: np.ndarray) -> None:
        if step <= self.log["observed"]:
            return
        self.curriculum.observe(successes, end_of_round=step == self.config.steps_per_round - 1)
        easy, hard, _ = group_shares(successes)
        self.log["shares"].append([easy, hard, len(successes)])
        self.log["observed"], self.log["state"] = step, asdict(self.curriculum.state)
        _write_json(self.path, self.log)

    def round_shares(self) -> tuple[float, float]:
        """Shares of the round's sampled groups that were all right / all wrong (on the outcome)."""
        shares = np.array(self.log["shares"], dtype=np.float64).reshape(-1, 3)
        if not shares[:, 2].sum():
            return 0.0, 0.0
        return (float(np.average(shares[:, 0], weights=shares[:, 2])),
                float(np.average(shares[:, 1], weights=shares[:, 2])))


def run_loop(
    ws: Workspace,
    ref: str,
    model: str,
    out_dir: Path,
    config: LoopConfig,
    reward: str | Sequence[str] = "math",
    resume: bool = False,
    say: Callable[[str], None] = lambda _: None,
    on_round: Callable[[dict], None] | None = None,
) -> LoopReport:
    """Run (or resume) the closed loop for `config.rounds` rounds; returns every round's metrics row."""
    from curate.lm.loading import fingerprint, load
    from curate.train.grpo import train_grpo
    from curate.train.grpo_config import GRPOConfig
    from curate.train.metrics import read_metrics
    from curate.train.proxy import resolve_model

    began = time.perf_counter()
    config.check()
    rewards = [reward] if isinstance(reward, str) else list(reward)
    weights = list(config.reward_weights) if config.reward_weights else [1.0] * len(rewards)
    if len(weights) != len(rewards):
        raise BadUsage(f"{len(weights)} reward weights for {len(rewards)} rewards",
                       hint="give one --reward-weight per --reward")
    reward = rewards[0] if len(rewards) == 1 else rewards  # as loop.json records it
    out_dir = Path(out_dir)
    state_path = out_dir / STATE
    version = resolve(ws, ref)
    if state_path.exists() and not resume:
        raise BadUsage(f"{out_dir} already holds a loop", hint="pass --resume to continue it, or choose another --out")
    if resume and not state_path.exists():
        raise BadUsage(f"--resume: {out_dir} holds no loop state ({STATE})", hint="start without --resume")
    ids = version.scan().select("id").collect()["id"]
    train_pos, heldout_pos = split_heldout(ids, config.eval_fraction, config.eval_size, config.seed)
    train_ids, heldout_ids = ids.gather(train_pos), ids.gather(heldout_pos)
    heldout_rows = _rows_by_id(version, heldout_ids.to_list())
    train_rows = _rows_by_id(version, train_ids.to_list())

    if resume:
        state = json.loads(state_path.read_text())
        fixed = ("strategy", "prompts_per_round", "num_generations", "seed", "eval_fraction", "eval_size",
                 "reward_weights")
        changed = [k for k in fixed if state["config"].get(k) != getattr(config, k)]
        changed += ["reward"] if state.get("reward", reward) != reward else []
        if changed or state["dataset"] != version.ref:
            raise BadUsage("--resume with different settings: " + ", ".join(changed or ["dataset"]),
                           hint=f"resume with the settings in {state_path}")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        base = resolve_model(ws, version, model)
        folder = Path(base).expanduser()
        model_key = config.model_key or (fingerprint(folder) if folder.is_dir() else load(base).model_hash)
        say(f"evaluating the starting model on {len(heldout_rows)} held-out prompts")
        eval_before = held_out_reward(base, heldout_rows, rewards, config)
        state = {"config": asdict(config), "dataset": version.ref, "reward": reward, "base_model": base, "model": base,
                 "model_key": model_key, "ledger_key": _ledger_key(model_key, rewards, weights, config),
                 "run": f"loop-{os.urandom(4).hex()}", "eval_before": eval_before,
                 "curriculum": asdict(CurriculumState.start(config.curriculum)),
                 "rounds": [], "rollouts": 0}
        _write_json(state_path, state)
    resumed_from = len(state["rounds"])
    key = state.get("ledger_key", state["model_key"])  # a loop started before reward-keyed ledgers keeps its key
    difficulty = None
    if config.strategy == "adarft":  # AdaRFT's static difficulty, frozen for the run
        column = difficulty_field(version, train_ids)
        if config.curriculum.reference in (key, state["model_key"]):
            raise BadUsage("--param reference names the loop's own ledger key, which moves during the run",
                           hint="sample a reference with `curate rollouts NAME --model REF --model-key ref`")
        difficulty = static_difficulty(ws, train_ids, config.curriculum.reference, column)
        known = int(np.count_nonzero(~np.isnan(difficulty)))
        say(f"adarft: static difficulty for {known:,} of {len(train_ids):,} train prompts"
            + (f"; {len(train_ids) - known:,} without one are not ranked" if known < len(train_ids) else ""))
    state["config"]["rounds"] = config.rounds

    for round_no in range(len(state["rounds"]) + 1, config.rounds + 1):
        t0 = time.perf_counter()
        round_dir = out_dir / f"round-{round_no:03d}"
        round_dir.mkdir(exist_ok=True)
        run = f"{state['run']}-r{round_no}"
        curriculum = StepCurriculum(config.strategy, config.curriculum, CurriculumState(**state["curriculum"]),
                                    config.pick_every)

        # 1-5. Per step: the curriculum's pick, rollouts, rewards, ledger, dynamic sampling / PODS, GRPO.
        picks = _RoundPicks(ws, key, train_ids, curriculum, difficulty, config, round_no, round_dir / "picks.json")
        grpo_dir = round_dir / "grpo"
        grpo = GRPOConfig(steps=config.steps_per_round, prompts_per_step=min(config.prompts_per_round, len(train_rows)),
                          num_generations=config.num_generations, pods_m=config.pods_m,
                          max_completion_length=config.max_completion_length, temperature=config.temperature,
                          lr=config.lr, loss_type=config.loss_type, beta=config.beta,
                          dynamic_sampling=config.uses_dynamic_sampling, max_refills=config.max_refills,
                          filter_on=config.filter_on, success_threshold=config.success_threshold,
                          decay=config.curriculum.decay,
                          mask_truncated_completions=config.mask_truncated_completions, template=config.template,
                          seed=config.seed + round_no, save_every=1,
                          ledger_key=key, run_name=run, dtype=config.dtype, reward_weights=config.reward_weights)
        resume_round = (grpo_dir / "checkpoint").exists()
        say(f"round {round_no}/{config.rounds}: GRPO, {config.steps_per_round} steps of {grpo.prompts_per_step} "
            f"prompts picked by {config.strategy} every {config.pick_every}" + (" — resuming" if resume_round else ""))
        stats = train_grpo(state["model"], train_rows, grpo_dir, grpo, rewards, ws=ws, resume=resume_round,
                           curriculum=picks)

        # 6. Held-out evaluation of the new model.
        eval_reward = held_out_reward(str(grpo_dir), heldout_rows, rewards, config)

        # 7. The round's row and the curriculum's state.
        metrics = read_metrics(grpo_dir)
        _, _, spent, rolled = _round_shares(ws, key, run, config.num_generations)
        easy, hard = picks.round_shares()
        curriculum_state = asdict(curriculum.state)
        train_reward = float(np.nanmean([m["reward"] for m in metrics])) if metrics else math.nan
        state["rollouts"] = state.get("rollouts", 0) + spent
        row = {"round": round_no, "strategy": config.strategy, "pick_every": config.pick_every, "prompts": rolled,
               "rollouts": spent,
               "rollouts_total": state["rollouts"], "train_reward": train_reward,
               "frac_reward_zero_std": float(np.mean([m["frac_reward_zero_std"] for m in metrics])) if metrics else None,
               "all_right_share": easy, "all_wrong_share": hard, "zero_var_share": easy + hard,
               "eval_reward": eval_reward, "grpo_seconds": stats["seconds"], "seconds": round(time.perf_counter() - t0, 2),
               **curriculum_state}
        state["rounds"].append(row)
        state["curriculum"] = curriculum_state
        state["model"] = str(grpo_dir)
        _write_json(state_path, state)
        (out_dir / "metrics.jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in state["rounds"]))
        if on_round:
            on_round(row)
    return LoopReport(out_dir, state["rounds"], state["eval_before"], resumed_from, state["model"],
                      round(time.perf_counter() - began, 2), state)

