"""A pass-rate simulator: compare prompt curricula without a model.

Model and assumptions (stated here because the results depend on them):
- Prompt i has a latent difficulty d_i ~ Normal(difficulty_mean, difficulty_std); the
  learner has a scalar skill s (starting at `skill0`); the pass probability is
  p_i = sigmoid(s - d_i).
- A rollout is a Bernoulli(p_i) reward; a group is k rollouts of one prompt.
- ASSUMPTION (the growth rule): one training step on a batch of groups raises the skill by
  eta * sum over the batch's groups whose rewards are not all equal of p_i (1 - p_i),
  divided by the nominal batch size B. p(1 - p) is the expected reward variance of the
  prompt, i.e. its learning signal; a group whose rewards are all equal has zero
  group-normalised advantage in GRPO and teaches nothing.
- Strategies see only what a real run sees: rewards of the rollouts they paid for, kept
  in the same per-prompt statistics as the catalog's ledger (attempts, successes, Beta
  posterior with MoPPS decay, zero-variance streak, latest group mean). They call the
  same rules as the `difficulty` selector (`curate.selectors.rl.difficulty_rules`).

Strategies: uniform; dynamic (DAPO dynamic sampling: drop zero-variance groups and
refill up to a cap); greso (dynamic sampling plus GRESO's pre-rollout skipping); band
(pass rate in [lo, hi], unseen prompts allowed); thompson (MoPPS); adarft.
`run_simulation` returns the rollouts spent until the skill reached `target_skill`
and the share of rollouts that fell in zero-variance groups.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from curate.selectors.rl import difficulty_rules as rules

STRATEGIES = ("uniform", "dynamic", "greso", "band", "thompson", "adarft")


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
    max_steps: int = 3000
    refill_cap: int = 8             # dynamic sampling: at most this many sampling rounds per step
    band: tuple[float, float] = (0.1, 0.9)
    target_pass: float = 0.5        # MoPPS target pass rate
    decay: float = 0.9              # MoPPS posterior decay
    greso_floor: float = 0.05
    greso_target_easy: float = 0.1  # GRESO: target shares of all-right / all-wrong groups among sampled ones
    greso_target_hard: float = 0.1
    adarft_eta: float = 0.5
    adarft_alpha: float = 2.0
    adarft_beta: float = 0.5
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
    """The per-prompt statistics a real run keeps (see curate.catalog.ledger)."""

    def __init__(self, n: int, decay: float):
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
        self.streak[idx] = np.where(flat, self.streak[idx] + 1, 0)
        self.last_mean[idx] = wins / k

    @property
    def pass_rate(self) -> np.ndarray:
        return np.divide(self.successes, self.attempts, out=np.full_like(self.successes, np.nan),
                         where=self.attempts > 0)


class _World:
    def __init__(self, config: SimConfig):
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
        informative = (wins > 0) & (wins < k)
        p = self.pass_prob(idx[informative])
        self.skill += self.config.eta * float(np.sum(p * (1 - p))) / self.config.batch

    def sample(self, n: int, pool: np.ndarray | None = None) -> np.ndarray:
        pool = np.arange(self.config.prompts) if pool is None else pool
        return self.rng.choice(pool, size=min(n, len(pool)), replace=False)


def _dynamic_step(world: _World, skip=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample, roll out and keep informative groups until B are collected or the cap is hit.

    Returns the kept prompts, their successes, and the successes of every group sampled.
    """
    config = world.config
    kept_idx, kept_wins, sampled_wins = [], [], []
    for _ in range(config.refill_cap):
        candidates = world.sample(config.batch)
        if skip is not None:
            candidates = candidates[~skip(candidates)]
        if len(candidates) == 0:
            continue
        wins = world.roll_out(candidates)
        sampled_wins.append(wins)
        informative = (wins > 0) & (wins < config.k)
        kept_idx.append(candidates[informative])
        kept_wins.append(wins[informative])
        if sum(len(i) for i in kept_idx) >= config.batch:
            break
    empty = np.array([], dtype=int)
    idx = np.concatenate(kept_idx)[: config.batch] if kept_idx else empty
    wins = np.concatenate(kept_wins)[: config.batch] if kept_wins else empty
    return idx, wins, np.concatenate(sampled_wins) if sampled_wins else empty


def run_simulation(strategy: str, config: SimConfig | None = None) -> SimResult:
    """Train the simulated learner with one strategy until it reaches `target_skill` or `max_steps`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    config = config or SimConfig()
    world = _World(config)
    ledger = world.ledger
    greso = rules.GresoState()
    target_difficulty = 0.5
    step = 0

    def greso_skip(candidates: np.ndarray) -> np.ndarray:
        return rules.greso_skip(ledger.streak[candidates], ledger.last_mean[candidates], greso,
                                config.greso_floor, world.rng)

    while world.skill < config.target_skill and step < config.max_steps:
        step += 1
        if strategy == "uniform":
            idx = world.sample(config.batch)
            wins = world.roll_out(idx)
        elif strategy == "dynamic":
            idx, wins, _ = _dynamic_step(world)
        elif strategy == "greso":
            idx, wins, sampled = _dynamic_step(world, greso_skip)
            if len(sampled):
                greso = rules.greso_update(greso, float(np.mean(sampled == config.k)), float(np.mean(sampled == 0)),
                                           config.greso_target_easy, config.greso_target_hard)
        elif strategy == "band":
            mask = rules.band_mask(np.nan_to_num(ledger.pass_rate), ledger.attempts, *config.band)
            pool = np.flatnonzero(mask)
            idx = world.sample(config.batch, pool if len(pool) >= config.batch else None)
            wins = world.roll_out(idx)
        elif strategy == "thompson":
            idx = rules.thompson_pick(ledger.alpha, ledger.beta, config.batch, config.target_pass, world.rng)
            wins = world.roll_out(idx)
        else:  # adarft
            difficulty = 1.0 - ledger.alpha / (ledger.alpha + ledger.beta)
            idx = rules.adarft_pick(difficulty, target_difficulty, config.batch)
            wins = world.roll_out(idx)
            target_difficulty = rules.adarft_update(target_difficulty, float(np.mean(wins / config.k)),
                                                    config.adarft_eta, config.adarft_alpha, config.adarft_beta)
        world.train(idx, wins)
    return SimResult(strategy, world.skill >= config.target_skill, step, world.rollouts, world.zero_var_rollouts,
                     world.skill, asdict(config))
