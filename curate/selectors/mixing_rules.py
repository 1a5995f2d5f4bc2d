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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
    """User weights over `domains` (missing ones get 0), normalised to sum to 1."""
    raw = np.array([max(0.0, float(weights.get(d, 0.0))) for d in domains])
    if raw.sum() <= 0:
        raise ValueError("static weights must give a positive weight to at least one domain")
    return raw / raw.sum()


def allocate(weights: np.ndarray, size: int, available: np.ndarray) -> np.ndarray:
    """Rows to take per domain for a mixed dataset of `size` rows.

    Largest-remainder rounding of weights * size, capped by what each domain has; what a
    capped domain cannot supply is redistributed by weight among the others.
    """
    weights = np.asarray(weights, dtype=float)
    available = np.asarray(available, dtype=int)
    size = min(size, int(available.sum()))
    take = np.zeros(len(weights), dtype=int)
    open_ = available > 0
    while take.sum() < size and open_.any():
        need = size - take.sum()
        w = np.where(open_, weights, 0.0)
        if w.sum() <= 0:
            w = open_.astype(float)
        share = w / w.sum() * need
        base = np.floor(share).astype(int)
        rest = need - base.sum()
        order = np.argsort(-(share - base), kind="stable")
        base[order[:rest]] += 1
        take = np.minimum(take + base, available)
        open_ = take < available
    return take
