"""Domain-weight rules: DoReMi's exponentiated-gradient update and learning-progress weights.

DoReMi (Xie et al., NeurIPS 2023, arXiv 2305.10429), Algorithm 1. With k domains,
uniform u = 1/k, step size eta and smoothing c, each step t:
    lambda_t[i] = (1 / sum_{x in B_i} |x|) * sum_{x in B_i} sum_j max(l_theta,j(x) - l_ref,j(x), 0)
    alpha'_t    = alpha_{t-1} * exp(eta * lambda_t)
    alpha_t     = (1 - c) * alpha'_t / sum(alpha'_t) + c * u
and the proxy takes a gradient step on sum_i alpha_t[i] * L_i(theta). The output is the
average of alpha_t over the T steps. The paper uses eta = 1 and c = 1e-3.

Learning progress (for the closed loop): a domain's weight grows with its measured gain in
mean reward per rollout, softmax-tempered and smoothed toward uniform the same way, so
domains where the policy is still improving get more of the next batch.

Sizes: a mix of N rows is split by Hamilton's largest-remainder method, in exact fractions
(`largest_remainder`), so the counts are the weights' exact shares of N up to one row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from curate.errors import BadUsage


def excess_loss(proxy_token_losses: list[np.ndarray], reference_token_losses: list[np.ndarray]) -> float:
    """lambda for one domain: clipped per-token excess loss, averaged over the domain's tokens."""
    tokens = sum(len(x) for x in proxy_token_losses)
    if tokens == 0:
        return 0.0
    total = sum(float(np.maximum(p - r, 0.0).sum()) for p, r in zip(proxy_token_losses, reference_token_losses))
    return total / tokens


def doremi_step(alpha: np.ndarray, excess: np.ndarray, eta: float = 1.0, smoothing: float = 1e-3) -> np.ndarray:
    """One exponentiated-gradient step on the domain weights, then smoothing toward uniform."""
    raised = alpha * np.exp(eta * excess)
    return (1 - smoothing) * raised / raised.sum() + smoothing / len(alpha)


@dataclass
class DoReMiState:
    """Running weights and the sum needed for their average over steps."""

    alpha: np.ndarray
    eta: float = 1.0
    smoothing: float = 1e-3
    total: np.ndarray = field(default=None)  # type: ignore[assignment]
    steps: int = 0

    @classmethod
    def uniform(cls, domains: int, eta: float = 1.0, smoothing: float = 1e-3) -> DoReMiState:
        return cls(np.full(domains, 1.0 / domains), eta, smoothing, np.zeros(domains), 0)

    def update(self, excess: np.ndarray) -> np.ndarray:
        self.alpha = doremi_step(self.alpha, np.asarray(excess, dtype=float), self.eta, self.smoothing)
        self.total = self.alpha if self.total is None else self.total + self.alpha
        self.steps += 1
        return self.alpha

    @property
    def average(self) -> np.ndarray:
        return self.total / self.steps if self.steps else self.alpha


def progress_weights(gain_per_rollout: np.ndarray, temperature: float = 1.0, smoothing: float = 0.1) -> np.ndarray:
    """Weights from per-domain learning progress: softmax(max(gain, 0) / temperature), smoothed toward uniform."""
    gains = np.maximum(np.nan_to_num(np.asarray(gain_per_rollout, dtype=float)), 0.0) / max(temperature, 1e-12)
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
