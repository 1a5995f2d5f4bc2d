"""The statistics of a comparison: per-arm mean, sd and t interval; paired differences to random.

- Per arm over its seeds: n, mean, sample standard deviation (n - 1 in the denominator) and the
  95% interval mean +- t(0.975, n - 1) * sd / sqrt(n) (Student's t; none for n < 2).
- Paired difference to the reference arm (`random`) over the seeds both finished:
  d_s = value(arm, s) - value(random, s), their mean, the paired t interval of that mean, a
  percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13: resample the seeds with
  replacement `resamples` times, seeded, and take the 2.5% and 97.5% quantiles of the resampled
  means), and the per-seed wins, ties and losses (for `loss`, lower wins).
  With 3 seeds the bootstrap has only 10 distinct resampled means and its interval is too
  narrow; the paired t interval is the honest one there. Both are reported.

The t quantile comes from the exact CDF of Student's t for integer degrees of freedom
(Abramowitz & Stegun 26.7.3 and 26.7.4), inverted by bisection, so no SciPy is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
HIGHER_IS_BETTER = {"accuracy": True, "reward": True, "loss": False}


def t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with `df` degrees of freedom (A&S 26.7.3 / 26.7.4)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:  # sin(theta) * (1 + 1/2 c^2 + 1*3/(2*4) c^4 + ... up to c^(df-2))
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return s * total
    if df == 1:
        return 2 * theta / math.pi
    term, total = 1.0, 1.0  # (2/pi) (theta + sin cos (1 + 2/3 c^2 + 2*4/(3*5) c^4 + ... up to c^(df-3)))
    for k in range(1, (df - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (theta + s * math.cos(theta) * total)


def t_quantile(level: float, df: int) -> float:
    """The t with P(|T| <= t) = level (e.g. level 0.95 gives t(0.975, df)), by bisection."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lo, hi = 0.0, 1.0
    while t_two_sided_mass(hi, df) < level:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_two_sided_mass(mid, df) < level:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """mean +- t * sd / sqrt(n); (nan, nan) for fewer than two values."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    half = t_quantile(level, n - 1) * float(np.std(values, ddof=1)) / math.sqrt(n)
    mean = float(np.mean(values))
    return mean - half, mean + half


def bootstrap_interval(values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: resample with replacement, seeded."""
    if len(values) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@dataclass
class ArmSummary:
    strategy: str
    seeds: list[int]
    values: list[float]
    n: int
    mean: float
    sd: float
    ci: tuple[float, float]
    # paired difference to the reference arm, over the seeds both have
    paired_seeds: list[int] = field(default_factory=list)
    diff_mean: float | None = None
    diff_ci_t: tuple[float, float] | None = None
    diff_ci_bootstrap: tuple[float, float] | None = None
    wins: int = 0
    ties: int = 0
    losses: int = 0

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def summarize_arm(strategy: str, by_seed: dict[int, float]) -> ArmSummary:
    seeds = sorted(by_seed)
    values = np.array([by_seed[s] for s in seeds], dtype=np.float64)
    n = len(values)
    return ArmSummary(strategy, seeds, values.tolist(), n, float(values.mean()) if n else math.nan,
                      float(np.std(values, ddof=1)) if n > 1 else math.nan, t_interval(values))


def pair_with(arm: ArmSummary, reference: dict[int, float], arm_values: dict[int, float], metric: str,
              resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> ArmSummary:
    """Fill `arm`'s paired difference to the reference arm's values (by seed)."""
    seeds = sorted(set(reference) & set(arm_values))
    diffs = np.array([arm_values[s] - reference[s] for s in seeds], dtype=np.float64)
    arm.paired_seeds = seeds
    if not seeds:
        return arm
    arm.diff_mean = float(diffs.mean())
    arm.diff_ci_t = t_interval(diffs)
    arm.diff_ci_bootstrap = bootstrap_interval(diffs, resamples, seed)
    better = diffs if HIGHER_IS_BETTER.get(metric, True) else -diffs
    arm.wins, arm.ties, arm.losses = int((better > 0).sum()), int((better == 0).sum()), int((better < 0).sum())
    return arm


def summarize(values: dict[str, dict[int, float]], metric: str, reference: str = "random",
              resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> list[ArmSummary]:
    """One summary per arm (in the given order); every arm but the reference is paired with it."""
    out = []
    for strategy, by_seed in values.items():
        arm = summarize_arm(strategy, by_seed)
        if strategy != reference and reference in values:
            pair_with(arm, values[reference], by_seed, metric, resamples, seed)
        out.append(arm)
    return out
