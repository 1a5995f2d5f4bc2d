"""Greedy maximisation of a log-determinant design objective (the engine behind FisherSFT).

Deb et al., "FisherSFT: Data-Efficient Supervised Fine-Tuning of Language Models Using
Information Gain", ICML 2025 (arXiv 2505.14826), choose sentences S to maximise

    f(S) = log det(V_S),   V_S = λI + Σ_{i∈S} Σ_j x_ij x_ijᵀ = λI + Σ_{i∈S} G_i,

the log-determinant of the (approximate) Fisher information of a log-linear model over the
last-layer embeddings x_ij of the tokens of sentence i. Only G_i = X_iᵀ X_i matters, so each
sentence is stored as a factor F_i with F_iᵀ F_i = G_i and r_i = min(tokens, d) rows (a QR
factor when a sentence has more tokens than dimensions). By the matrix determinant lemma

    f(S ∪ {i}) − f(S) = log det(I_r + F_i V_S⁻¹ F_iᵀ),

and after adding sentence i, V⁻¹ takes a rank-r Woodbury update computed from the Cholesky
factor C of that same r×r matrix: V⁻¹ ← V⁻¹ − U Uᵀ with U = V⁻¹ F_iᵀ C⁻ᵀ.

f is monotone submodular (log det is concave on PSD matrices), so a candidate's gain can only
shrink as S grows. Lazy greedy (Minoux 1978) keeps a priority queue of stale gains, which are
upper bounds: when the top of the queue is fresh it is the true argmax, so lazy and naive
greedy return the same sequence (ties go to the lower index in both). Both compute gains with
the same routine so that equal inputs give bit-identical gains.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

CHUNK_ELEMENTS = 1 << 24  # factor entries processed per block when scoring many candidates


def compress(tokens: np.ndarray) -> np.ndarray:
    """A factor F with Fᵀ F = Xᵀ X and min(m, d) rows, for token embeddings X [m, d]."""
    tokens = np.asarray(tokens, dtype=np.float64)
    m, d = tokens.shape
    if m <= d:
        return tokens
    return np.linalg.qr(tokens, mode="r")


def pad_factors(factors: list[np.ndarray], dim: int, dtype=np.float32) -> np.ndarray:
    """Stack ragged factors [r_i, d] into [n, max r_i, d]; zero rows change no determinant."""
    rank = max((f.shape[0] for f in factors), default=1) or 1
    out = np.zeros((len(factors), rank, dim), dtype=dtype)
    for i, f in enumerate(factors):
        out[i, : f.shape[0]] = f
    return out


@dataclass
class GreedyResult:
    order: np.ndarray  # picked indices, in pick order
    gains: np.ndarray  # marginal gain of each pick when it was picked
    evaluations: int  # candidate gains computed
    logdet: float  # log det(V_S) of the final set


@dataclass
class LogDetState:
    """V⁻¹ for the current set, with batched gains and Woodbury updates."""

    factors: np.ndarray  # [n, r, d]
    lam: float = 1.0
    v_inv: np.ndarray = field(init=False)
    logdet: float = field(init=False)

    def __post_init__(self) -> None:
        if self.factors.ndim != 3:
            raise ValueError(f"factors must be [n, r, d], got shape {self.factors.shape}")
        if not self.lam > 0:
            raise ValueError(f"the regulariser λ must be positive, got {self.lam}")
        d = self.factors.shape[2]
        self.v_inv = np.eye(d) / self.lam
        self.logdet = d * math.log(self.lam)

    def gains(self, index: np.ndarray) -> np.ndarray:
        """log det(I + F_i V⁻¹ F_iᵀ) for the candidates `index`."""
        index = np.asarray(index, dtype=np.int64)
        _, r, d = self.factors.shape
        out = np.empty(len(index))
        step = max(1, CHUNK_ELEMENTS // (r * d))
        for start in range(0, len(index), step):
            part = index[start:start + step]
            f = self.factors[part].astype(np.float64)
            # Stacked matmul runs one product per candidate, so a gain does not depend on the
            # batch it was computed in: naive and lazy greedy see bit-identical values.
            m = f @ self.v_inv @ f.transpose(0, 2, 1)
            if r == 1:  # pooled features: one rank-one term per example
                out[start:start + len(part)] = np.log1p(m[:, 0, 0])
                continue
            m[:, np.arange(r), np.arange(r)] += 1.0
            chol = np.linalg.cholesky(m)
            out[start:start + len(part)] = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        return out

    def add(self, i: int) -> float:
        """Add candidate i to the set (Woodbury update of V⁻¹); returns its gain."""
        f = self.factors[i].astype(np.float64)
        f = f[np.any(f != 0, axis=1)]  # padding rows
        if f.shape[0] == 0:
            return 0.0
        vf = self.v_inv @ f.T  # [d, r]
        m = f @ vf
        m[np.diag_indices_from(m)] += 1.0
        chol = np.linalg.cholesky(m)
        u = np.linalg.solve(chol, vf.T).T  # V⁻¹ Fᵀ C⁻ᵀ
        self.v_inv -= u @ u.T
        self.v_inv = 0.5 * (self.v_inv + self.v_inv.T)
        gain = 2.0 * float(np.log(np.diag(chol)).sum())
        self.logdet += gain
        return gain


def _checked(factors: np.ndarray, budget: int, exclude: np.ndarray | None) -> np.ndarray:
    n = factors.shape[0]
    if budget < 0:
        raise ValueError("budget must be non-negative")
    allowed = np.ones(n, dtype=bool)
    if exclude is not None:
        allowed[exclude] = False
    if budget > int(allowed.sum()):
        raise ValueError(f"budget {budget} exceeds the {int(allowed.sum())} candidates")
    return allowed


def naive_greedy(
    factors: np.ndarray, budget: int, lam: float = 1.0, exclude: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> GreedyResult:
    """Recompute every candidate's gain each round and take the best (lowest index on ties)."""
    allowed = _checked(factors, budget, exclude)
    state = LogDetState(factors, lam)
    candidates = np.flatnonzero(allowed)
    order, gains, evaluations = [], [], 0
    for step in range(budget):
        values = state.gains(candidates)
        evaluations += len(candidates)
        best = int(np.argmax(values))
        pick = int(candidates[best])
        gains.append(float(values[best]))
        state.add(pick)
        order.append(pick)
        candidates = np.delete(candidates, best)
        if progress:
            progress(step + 1)
    return GreedyResult(np.array(order, dtype=np.int64), np.array(gains), evaluations, state.logdet)


def lazy_greedy(
    factors: np.ndarray, budget: int, lam: float = 1.0, exclude: np.ndarray | None = None,
    batch: int = 1, progress: Callable[[int], None] | None = None, heap_size: int = 4096,
) -> GreedyResult:
    """Lazy greedy: a max-priority queue of stale gains (upper bounds by submodularity).

    Each round looks at the top of the queue: a gain computed this round is the true maximum
    and is taken; a stale one is recomputed and put back. `batch` > 1 recomputes up to that
    many stale entries from the top at once (fewer calls for large pools); it only tightens
    bounds, so the result is unchanged.

    The queue has two levels so that it stays fast for millions of candidates: a binary heap
    (`heapq`) of the best `heap_size` entries, and the rest in an array. When the array's
    best entry beats the heap's top, the array's best `heap_size` entries move into the heap.
    Order is (−gain, index) throughout, so ties go to the lower index as in `naive_greedy`.
    """
    allowed = _checked(factors, budget, exclude)
    state = LogDetState(factors, lam)
    candidates = np.flatnonzero(allowed)
    evaluations = len(candidates)
    reserve = np.full(len(factors), np.inf)  # −gain of the entries not in the heap (inf: in the heap, or gone)
    reserve[candidates] = -state.gains(candidates)
    fresh = np.zeros(len(factors), dtype=np.int64)  # the round in which each entry's gain was computed
    heap: list[tuple[float, int]] = []

    top = [0]  # the reserve's best entry; it changes only when the reserve does

    def refill() -> None:
        """Move the reserve's best entries into the heap."""
        count = min(heap_size, int(np.isfinite(reserve).sum()))
        if count:
            best = np.argpartition(reserve, count - 1)[:count] if count < len(reserve) else np.arange(len(reserve))
            best = best[np.isfinite(reserve[best])]
            for item in zip(reserve[best].tolist(), best.tolist()):
                heapq.heappush(heap, item)
            reserve[best] = np.inf
        top[0] = int(np.argmin(reserve))  # the lowest index among equal gains

    def reserve_wins() -> bool:
        value = reserve[top[0]]
        return value != np.inf and (not heap or (value, top[0]) < heap[0])

    refill()
    order, gains = [], []
    for step in range(budget):
        while True:
            if reserve_wins():
                refill()
                continue
            if fresh[heap[0][1]] == step:
                break
            stale = [heapq.heappop(heap)]
            while len(stale) < batch and heap and fresh[heap[0][1]] != step:
                stale.append(heapq.heappop(heap))
            index = np.fromiter((i for _, i in stale), dtype=np.int64, count=len(stale))
            values = state.gains(index)
            evaluations += len(stale)
            fresh[index] = step
            room = max(0, heap_size - len(heap))  # the heap stays small; the rest go back to the reserve
            for item in zip((-values[:room]).tolist(), index[:room].tolist()):
                heapq.heappush(heap, item)
            if room < len(index):
                back = index[room:]
                reserve[back] = -values[room:]
                best = back[np.lexsort((back, reserve[back]))[0]]
                if (reserve[best], best) < (reserve[top[0]], top[0]):
                    top[0] = int(best)
        neg, pick = heapq.heappop(heap)
        gains.append(-neg)
        state.add(pick)
        order.append(pick)
        if progress:
            progress(step + 1)
    return GreedyResult(np.array(order, dtype=np.int64), np.array(gains), evaluations, state.logdet)


def logdet_of(factors: np.ndarray, subset, lam: float = 1.0) -> float:
    """f(S) computed directly: log det(λI + Σ_{i∈S} F_iᵀ F_i)."""
    d = factors.shape[2]
    v = lam * np.eye(d)
    for i in subset:
        f = factors[i].astype(np.float64)
        v += f.T @ f
    return float(np.linalg.slogdet(v)[1])


def random_projection(dim_in: int, dim_out: int, seed: int) -> np.ndarray:
    """A Johnson–Lindenstrauss map [dim_in, dim_out] with N(0, 1/dim_out) entries."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((dim_in, dim_out)) / math.sqrt(dim_out)
