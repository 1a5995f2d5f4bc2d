"""Domain-weight rules: learning-progress and static weights, and exact mix sizes.

Learning progress (for the closed loop): a domain's progress is the mean reward of its last W
rollouts minus the mean of the W before them (`window_progress`; with fewer than 2W rollouts,
the later half against the earlier half), in reward units, so it does not shrink as the
ledger grows (a slope per rollout does: ~1e-4 at real sizes). Weights are
softmax(progress / temperature), temperature in reward units (0.1: a domain 0.2 ahead gets
e^2 = 7.4 times the weight), clipped at 0 (domains getting worse get the floor) or, with
`absolute`, of |progress| (absolute learning progress, Portelas et al. 2019, arXiv
1910.07224: forgetting is a signal too), smoothed toward uniform (as DoReMi smooths, Xie et
al., NeurIPS 2023, arXiv 2305.10429). DoReMi's own update runs inside proxy training: `curate.train.doremi`.

Sizes: a mix of N rows is split by Hamilton's largest-remainder method, in exact fractions
(`largest_remainder`), so the counts are the weights' exact shares of N up to one row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from curate.errors import BadUsage


PROGRESS_WINDOW = 64  # rollouts per window
PROGRESS_TEMPERATURE = 0.1  # reward units


def window_progress(rewards: np.ndarray, window: int = PROGRESS_WINDOW) -> float:
    """Mean of the last `window` rewards minus the mean of the `window` before them (in order of
    sampling); with fewer than 2 x window, the later half minus the earlier half; 0 below 2 rewards."""
    rewards = np.asarray(rewards, dtype=float)
    w = min(window, len(rewards) // 2)
    if w < 1:
        return 0.0
    return float(rewards[-w:].mean() - rewards[-2 * w:-w].mean())


def progress_weights(progress: np.ndarray, temperature: float = PROGRESS_TEMPERATURE, smoothing: float = 0.1,
                     absolute: bool = False) -> np.ndarray:
    """Weights from per-domain learning progress: softmax(max(progress, 0) / temperature) (or of |progress|
    with `absolute`), smoothed toward uniform."""
    values = np.nan_to_num(np.asarray(progress, dtype=float))
    gains = (np.abs(values) if absolute else np.maximum(values, 0.0)) / max(temperature, 1e-12)
    soft = np.exp(gains - gains.max())
    soft /= soft.sum()
    return (1 - smoothing) * soft + smoothing / len(soft)


def static_weights(weights: dict[str, float], domains: list[str]) -> np.ndarray:
    """User weights over `domains` (unnamed ones get 0), normalised to sum to 1.

    Every weight must be a finite number >= 0 and at least one must be positive."""
    for domain, weight in weights.items():
        if not math.isfinite(weight) or weight < 0:
            raise BadUsage(f"weights: {domain}={weight:g} is not allowed; a weight is a finite number >= 0",
                           hint="e.g. --weights math=0.6,code=0.4 (a domain left out gets weight 0)")
    raw = np.array([float(weights.get(d, 0.0)) for d in domains])
    if raw.sum() <= 0:
        raise BadUsage("weights: every weight is 0, so no domain would get a row",
                       hint="give at least one domain a positive weight, e.g. --weights "
                            + ",".join(f"{d}=1" for d in domains[:2]))
    return raw / raw.sum()


def largest_remainder(weights: Sequence[float], size: int) -> np.ndarray:
    """Hamilton's method: `size` rows split in proportion to `weights`, exactly.

    Each domain gets floor(size * w_i / sum w) rows; the rows left go one each to the largest
    fractional parts, ties to the earlier domain. Arithmetic is in exact fractions, so a tie
    is a tie (1/3 of 10 rows gives 4, 3, 3, never by rounding noise)."""
    exact = [Fraction(float(w)) for w in weights]
    total = sum(exact)
    if total <= 0 or size <= 0:
        return np.zeros(len(exact), dtype=np.int64)
    quotas = [w * size / total for w in exact]
    take = [math.floor(q) for q in quotas]
    left = size - sum(take)
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - take[i]), i))
    for i in order[:left]:
        take[i] += 1
    return np.array(take, dtype=np.int64)


def exact_size_limit(weights: Sequence[float], available: Sequence[int], size: int) -> int:
    """The largest mix of at most `size` rows whose largest-remainder split fits what each domain has.

    Below S0 = min_i floor(available_i / w_i) every split fits; above min_i (available_i + 1) / w_i
    none does (some quota reaches available_i + 1). The sizes in between are checked one by one,
    since largest remainder is not monotone in the size (the Alabama paradox)."""
    exact = [Fraction(float(w)) for w in weights]
    total = sum(exact)
    shares = [(w / total, int(a)) for w, a in zip(exact, available) if w > 0]
    low = min(math.floor(a / w) for w, a in shares)
    high = min(math.ceil((a + 1) / w) for w, a in shares)
    best = min(low, size)
    for candidate in range(low + 1, min(high, size + 1)):
        if np.all(largest_remainder(weights, candidate) <= np.asarray(available)):
            best = candidate
    return best


def allocate(weights: np.ndarray, size: int, available: np.ndarray) -> np.ndarray:
    """Rows per domain: the largest-remainder split of `size`, where a domain that has fewer rows
    than its share gives what it lacks to the other positive-weight domains, by weight.

    A domain of weight 0 never gets a row; the result sums to less than `size` only when the
    positive-weight domains hold fewer rows than that in all."""
    weights = np.asarray(weights, dtype=float)
    available = np.asarray(available, dtype=np.int64)
    take = np.zeros(len(weights), dtype=np.int64)
    open_ = (available > 0) & (weights > 0)
    while take.sum() < size and open_.any():
        share = largest_remainder(np.where(open_, weights, 0.0), int(size - take.sum()))
        take = np.minimum(take + share, available)
        open_ &= take < available
    return take
