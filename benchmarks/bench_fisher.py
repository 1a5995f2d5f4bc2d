"""FisherSFT (Deb et al., ICML 2025): speed of the greedy engine, and the paper's claim on a planted model.

Three results, one JSON line each (per budget for the last):

- greedy: n = 20,000 sentences of 32 token embeddings, d = 64, budget k = 500. Lazy and
  naive greedy run in the same process on the same factors; the sets must be identical and
  lazy at least 20x faster.
- pooled: one vector per sentence (the pooled-feature mode), 1,000 picked out of 1,000,000,
  d = 64, with peak RSS (target: under 2 minutes).
- logistic: multinomial logistic regression with planted token embeddings and a planted
  parameter; labels are sampled from the true model, a model is fitted (scikit-learn) on the
  tokens of the chosen sentences, and its prediction error (total variation to the true
  class probabilities, mean and max over the pool's tokens) is compared between greedy
  log-det selection and random selection at the same budget, averaged over seeds.

Each part runs in its own process so its peak RSS is its own.

    python benchmarks/bench_fisher.py                  # all three
    python benchmarks/bench_fisher.py --only logistic --seeds 5
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from curate.selectors.sft.logdet import lazy_greedy, naive_greedy


def emit(**fields) -> None:
    print(json.dumps({"bench": "fisher", **fields}), flush=True)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def token_factors(n: int, tokens: int, d: int, seed: int) -> np.ndarray:
    """Sentences of Gaussian token embeddings whose per-dimension scales vary by sentence."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, tokens, d), dtype=np.float32)
    for start in range(0, n, 2000):
        m = min(2000, n - start)
        scales = rng.lognormal(0.0, 1.0, size=(m, 1, d))
        out[start:start + m] = rng.standard_normal((m, tokens, d)) * scales
    return out


def bench_greedy(n: int, tokens: int, d: int, k: int, seed: int) -> None:
    factors = token_factors(n, tokens, d, seed)
    t0 = time.perf_counter()
    lazy = lazy_greedy(factors, k, lam=1.0, batch=32)
    lazy_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = naive_greedy(factors, k, lam=1.0,
                         progress=lambda step: print(f"naive greedy {step}/{k}", file=sys.stderr, flush=True)
                         if step % 50 == 0 else None)
    naive_s = time.perf_counter() - t0
    emit(result="greedy", n=n, tokens=tokens, d=d, k=k, identical_sets=set(lazy.order) == set(naive.order),
         identical_order=bool(np.array_equal(lazy.order, naive.order)), lazy_s=round(lazy_s, 2),
         naive_s=round(naive_s, 2), ratio=round(naive_s / lazy_s, 1), lazy_evaluations=lazy.evaluations,
         naive_evaluations=naive.evaluations, logdet=round(lazy.logdet, 4), peak_rss_mb=peak_rss_mb())


def bench_pooled(n: int, d: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    vectors = np.empty((n, 1, d), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        vectors[start:start + m, 0] = rng.standard_normal((m, d)) * rng.lognormal(0.0, 0.5, size=(m, 1))
    made_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = lazy_greedy(vectors, k, lam=1.0, batch=256)
    seconds = time.perf_counter() - t0
    emit(result="pooled", n=n, d=d, k=k, seconds=round(seconds, 2), data_seconds=round(made_s, 2),
         evaluations=result.evaluations, under_2_minutes=seconds < 120, peak_rss_mb=peak_rss_mb())


# -- the paper's claim, qualitatively ------------------------------------------------------

def logistic_world(seed: int, n: int = 2000, tokens: int = 8, d: int = 8, classes: int = 4):
    """Planted token embeddings X [n, tokens, d], sampled labels y, true probabilities p.

    Each sentence is strong (scale 2) on two of the first d − 2 dimensions and weak (0.3)
    elsewhere; 3% of sentences are also strong on one of the last two dimensions, which random
    selection rarely sees."""
    rng = np.random.default_rng(seed)
    scale = np.full((n, d), 0.3)
    common = np.argsort(rng.random((n, d - 2)), axis=1)[:, :2]
    np.put_along_axis(scale, common, 2.0, axis=1)
    rare = rng.random(n) < 0.03
    scale[rare, d - 2 + rng.integers(0, 2, size=int(rare.sum()))] = 2.0
    x = rng.standard_normal((n, tokens, d)) * scale[:, None, :]
    theta = rng.standard_normal((d, classes))
    logits = x @ theta
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    y = (p.cumsum(-1) < rng.random((n, tokens, 1))).sum(-1)
    return x, y, p


def prediction_error(x: np.ndarray, y: np.ndarray, p: np.ndarray, chosen: np.ndarray) -> tuple[float, float]:
    """(mean, max) total variation between fitted and true class probabilities over every token."""
    import warnings

    from sklearn.linear_model import LogisticRegression

    d = x.shape[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=100.0, max_iter=1000).fit(x[chosen].reshape(-1, d), y[chosen].reshape(-1))
    fitted = np.zeros(p.shape)
    fitted[..., model.classes_] = model.predict_proba(x.reshape(-1, d)).reshape(p.shape[:2] + (len(model.classes_),))
    tv = 0.5 * np.abs(fitted - p).sum(-1)
    return float(tv.mean()), float(tv.max())


def compare(seeds: int, budgets: tuple[int, ...], n: int = 2000) -> list[dict]:
    """Greedy log-det vs random selection, averaged over seeds, per budget."""
    rows = []
    for budget in budgets:
        greedy, random = [], []
        for seed in range(seeds):
            x, y, p = logistic_world(seed, n=n)
            picked = lazy_greedy(x.astype(np.float32), budget, lam=1.0).order
            greedy.append(prediction_error(x, y, p, picked))
            sample = np.random.default_rng(1000 + seed).choice(len(x), size=budget, replace=False)
            random.append(prediction_error(x, y, p, sample))
        g, r = np.mean(greedy, axis=0), np.mean(random, axis=0)
        rows.append({"budget": budget, "seeds": seeds,
                     "greedy_mean_tv": round(float(g[0]), 4), "random_mean_tv": round(float(r[0]), 4),
                     "greedy_max_tv": round(float(g[1]), 4), "random_max_tv": round(float(r[1]), 4)})
    return rows


def bench_logistic(seeds: int) -> None:
    d = logistic_world(0, n=10)[0].shape[2]
    for row in compare(seeds, (2 * d, 4 * d, 8 * d, 16 * d)):
        emit(result="logistic", dimension=d, **row, greedy_better=bool(row["greedy_mean_tv"] < row["random_mean_tv"]),
             peak_rss_mb=peak_rss_mb())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("greedy", "pooled", "logistic"))
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, default=500)
    parser.add_argument("--pooled-n", type=int, default=1_000_000)
    parser.add_argument("--pooled-k", type=int, default=1_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.only is None:  # each part in its own process, for its own peak RSS
        for part in ("greedy", "pooled", "logistic"):
            subprocess.run([sys.executable, __file__, "--only", part, *sys.argv[1:]], check=True)
        return
    if args.only == "greedy":
        bench_greedy(args.n, args.tokens, args.d, args.k, args.seed)
    elif args.only == "pooled":
        bench_pooled(args.pooled_n, args.d, args.pooled_k, args.seed)
    else:
        bench_logistic(args.seeds)


if __name__ == "__main__":
    main()
