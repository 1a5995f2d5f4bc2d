"""A pass-rate simulator: a tool to see how curricula behave under stated assumptions.

It is not evidence that a curriculum helps: its learner is an assumption, and the winner
depends on it (benchmarks/bench_curriculum.py prints how the ranking moves with the gain
rule and the difficulty spread; benchmarks/bench_loop.py measures real rollouts).

Model and assumptions:
- Prompt i has a latent difficulty d_i ~ Normal(difficulty_mean, difficulty_std); the
  learner has a scalar skill s (starting at `skill0`); the pass probability is
  p_i = sigmoid(s - d_i). A rollout is a Bernoulli(p_i) success; a group is k rollouts.
- ASSUMPTION (the gain rule): one training step raises the skill by eta / B times a sum
  over the step's groups whose rewards are not all equal (all-equal groups have zero
  GRPO advantage) of: `variance`: p(1 - p), the prompt's reward variance (a policy that
  targets p = 0.5 is optimal by construction); `sqrt`: 0.5·sqrt(p(1 - p)) (a gradient
  norm that grows like the reward's standard deviation); `constant`: 0.25 (every mixed
  group teaches the same). The three peak at 0.25 per group.
- Strategies see only what a real run sees: their own rollouts, kept in the ledger's
  statistics (attempts, successes, Beta posterior with decay λ, same-kind zero-variance
  streak, latest group success rate), and they run the loop's code: the curriculum's
  `StepCurriculum` and `choose` (curate.selectors.rl.schedule), per step or per round
  (`pick_every`), with the loop's defaults (decay 1, MoPPS candidates 16 x B, GRESO's
  reference constants, AdaRFT's static difficulty from a reference run of k rollouts per
  prompt at the starting skill, not counted as spent).

Strategies: uniform; dynamic (uniform picks plus DAPO dynamic sampling: drop zero-variance
groups and pick again, up to `max_refills` extra rounds); greso (GRESO's pre-rollout skips
plus dynamic sampling); band; thompson (MoPPS); adarft. `run_simulation` returns the
rollouts spent until the skill reached `target_skill` and the share of rollouts in
zero-variance groups.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from curate.selectors.rl.difficulty import CurriculumParams, LedgerView
from curate.selectors.rl.schedule import StepCurriculum, choose, round_pool_size

STRATEGIES = ("uniform", "dynamic", "greso", "band", "thompson", "adarft")
GAIN_RULES = ("variance", "sqrt", "constant")


@dataclass(frozen=True)
class SimConfig:
    prompts: int = 1000
    k: int = 8                      # rollouts per prompt (group size)
    batch: int = 32                 # B: groups per training step
    eta: float = 0.05               # skill gained per unit of mean learning signal
    skill0: float = 0.0
    target_skill: float = 3.0
    difficulty_mean: float = 1.5
    difficulty_std: float = 3.0
    gain: str = "variance"          # variance | sqrt | constant (see the module docstring)
    max_steps: int = 3000
    max_refills: int = 7            # dynamic sampling: at most this many extra sampling rounds per step
    pick_every: str = "step"        # step | round (as curate loop --pick-every)
    steps_per_round: int = 4        # with pick_every="round"
    band: tuple[float, float] = (0.1, 0.9)
    target_pass: float = 0.5        # MoPPS target pass rate
    candidate_ratio: float = CurriculumParams.candidate_ratio
    decay: float = CurriculumParams.decay  # MoPPS posterior decay (the loop's default)
    seed: int = 0


@dataclass
class SimResult:
    strategy: str
    reached: bool
    steps: int
    rollouts: int                   # spent until the target skill (or in all, if never reached)
    zero_var_rollouts: int
    final_skill: float
    config: dict = field(default_factory=dict)

    @property
    def zero_var_fraction(self) -> float:
        return self.zero_var_rollouts / self.rollouts if self.rollouts else 0.0


class _Ledger:
    """The per-prompt statistics a real run keeps (see curate.catalog.ledger), for binary rewards."""

    def __init__(self, n: int, decay: float):
        self.ids = pl.Series("id", np.arange(n).astype(str))
        self.attempts = np.zeros(n)
        self.successes = np.zeros(n)
        self.alpha = np.ones(n)
        self.beta = np.ones(n)
        self.streak = np.zeros(n, dtype=int)
        self.last_mean = np.full(n, np.nan)
        self.decay = decay

    def update(self, idx: np.ndarray, wins: np.ndarray, k: int) -> None:
        self.attempts[idx] += k
        self.successes[idx] += wins
        self.alpha[idx] = self.decay * self.alpha[idx] + (1 - self.decay) + wins
        self.beta[idx] = self.decay * self.beta[idx] + (1 - self.decay) + (k - wins)
        flat = (wins == 0) | (wins == k)
        same_kind = (self.streak[idx] > 0) & ((np.nan_to_num(self.last_mean[idx]) >= 0.5) == (wins == k))
        self.streak[idx] = np.where(flat, np.where(same_kind, self.streak[idx] + 1, 1), 0)
        self.last_mean[idx] = wins / k

    def view(self, static_difficulty: np.ndarray | None) -> LedgerView:
        return LedgerView(self.ids, self.attempts, self.successes, self.alpha, self.beta, self.streak,
                          self.last_mean, static_difficulty)


class _World:
    def __init__(self, config: SimConfig):
        if config.gain not in GAIN_RULES:
            raise ValueError(f"unknown gain rule {config.gain!r}; choose from {', '.join(GAIN_RULES)}")
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.difficulty = self.rng.normal(config.difficulty_mean, config.difficulty_std, config.prompts)
        self.skill = config.skill0
        self.ledger = _Ledger(config.prompts, config.decay)
        self.rollouts = 0
        self.zero_var_rollouts = 0

    def pass_prob(self, idx: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.skill - self.difficulty[idx])))

    def roll_out(self, idx: np.ndarray) -> np.ndarray:
        """k Bernoulli rewards per prompt; returns the number of successes per prompt."""
        k = self.config.k
        wins = self.rng.binomial(k, self.pass_prob(idx))
        self.rollouts += k * len(idx)
        self.zero_var_rollouts += k * int(np.sum((wins == 0) | (wins == k)))
        self.ledger.update(idx, wins, k)
        return wins

    def train(self, idx: np.ndarray, wins: np.ndarray) -> None:
        k = self.config.k
        p = self.pass_prob(idx[(wins > 0) & (wins < k)])
        signal = {"variance": p * (1 - p), "sqrt": 0.5 * np.sqrt(p * (1 - p)), "constant": np.full(len(p), 0.25)}
        self.skill += self.config.eta * float(np.sum(signal[self.config.gain])) / self.config.batch


def run_simulation(strategy: str, config: SimConfig | None = None) -> SimResult:
    """Train the simulated learner with one strategy until it reaches `target_skill` or `max_steps`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    config = config or SimConfig()
    world = _World(config)
    params = CurriculumParams(lo=config.band[0], hi=config.band[1], target=config.target_pass,
                              candidate_ratio=config.candidate_ratio, decay=config.decay)
    curriculum = StepCurriculum("uniform" if strategy == "dynamic" else strategy, params, every=config.pick_every)
    dynamic = strategy in ("dynamic", "greso")
    static = None
    if strategy == "adarft":  # a reference run at the starting skill: k rollouts a prompt, not counted
        everyone = np.arange(config.prompts)
        static = 1.0 - world.rng.binomial(config.k, world.pass_prob(everyone)) / config.k
    pool, cursor, step = None, 0, 0
    k = config.k
    while world.skill < config.target_skill and step < config.max_steps:
        if config.pick_every == "round" and step % config.steps_per_round == 0:
            size = round_pool_size(config.batch, dynamic, config.max_refills)
            pool, cursor = choose(curriculum, world.ledger.view(static), size, world.rng), 0
        kept_idx, kept_wins, sampled = [], [], []
        for refill in range(1 + (config.max_refills if dynamic else 0)):
            if config.pick_every == "step":
                earlier = np.concatenate(sampled[0::2]) if sampled else None
                idx = choose(curriculum, world.ledger.view(static), config.batch, world.rng, earlier)
            else:
                idx = pool[(cursor + np.arange(config.batch)) % len(pool)]
                cursor += config.batch
            wins = world.roll_out(idx)
            sampled += [idx, wins]
            informative = (wins > 0) & (wins < k) if dynamic else np.ones(len(idx), dtype=bool)
            kept_idx.append(idx[informative])
            kept_wins.append(wins[informative])
            if sum(len(i) for i in kept_idx) >= config.batch:
                break
        step += 1
        all_wins = np.concatenate(sampled[1::2])
        successes = (np.arange(k)[None, :] < all_wins[:, None]).astype(np.float64)  # [groups, k]
        curriculum.observe(successes, end_of_round=config.pick_every == "step" or step % config.steps_per_round == 0)
        world.train(np.concatenate(kept_idx)[: config.batch], np.concatenate(kept_wins)[: config.batch])
    return SimResult(strategy, world.skill >= config.target_skill, step, world.rollouts, world.zero_var_rollouts,
                     world.skill, asdict(config))
