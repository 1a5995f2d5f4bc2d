"""Which selection trains the best model on the demo pool? Every candidate arm against random.

The claim it checks: the chain `curate demo` presents as "curated" (`curate.demo.curation.CURATED`)
is the candidate that measured best on the demo pool, and it beats random on mean held-out
accuracy. The setup is the demo's own (`curate.demo.build_pool`, `demo_proxy`,
`curate.demo.curation.run_ablation`, i.e. `curate compare`): the same pool, proxy, held-out
problems, warmed-up base and SFT recipe; only the list of arms and the number of seeds differ.

The candidate arms were fixed before any of them was run (docs/decisions.md, "The demo"):
random; dedup,random; dedup,perplexity,random and dedup,ifd,random (each filter keeps the
better-scoring half of the pool's rows, then a random sample); dedup,perplexity,fisher;
dedup,fisher; all scored by the proxy. Then a second comparison with the base as the scorer
(token-clean masks must be in the trained model's tokenizer): dedup,perplexity,random with
and without token-clean, its reference trained on the clean warm-up set.

Prints one JSON line per arm and comparison (mean, sd, paired difference to random and its t
interval, wins/ties/losses, share of planted faults in its picks by kind), then one line with
the base.

    python benchmarks/bench_demo_arms.py                   # 5 seeds, every candidate
    python benchmarks/bench_demo_arms.py --seeds 3 --arms dedup,perplexity,random
    python benchmarks/bench_demo_arms.py --workspace /tmp/arms-ws   # keep (and reuse) the cells
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curate.catalog.workspace import Workspace  # noqa: E402
from curate.demo.run import build_pool, demo_proxy  # noqa: E402
from curate.demo.base import BaseConfig  # noqa: E402
from curate.demo.curation import (CANDIDATE_PARAMS, CANDIDATES, TOKEN_CLEAN_ARMS, TOKEN_CLEAN_PARAMS,  # noqa: E402
                                   AblationConfig, run_ablation)


def main() -> None:
    defaults, base_defaults = AblationConfig(), BaseConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--proxy-steps", type=int, default=80)
    parser.add_argument("--budget", type=int, default=defaults.budget)
    parser.add_argument("--sft-steps", type=int, default=defaults.sft_steps)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--batch-tokens", type=int, default=defaults.batch_tokens)
    parser.add_argument("--base-steps", type=int, default=base_defaults.steps)
    parser.add_argument("--held-out", type=int, default=defaults.held_out)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heldout-offset", type=int, default=defaults.heldout_offset,
                        help="seed offset of the held-out problems; another value makes a dev set for choosing a recipe")
    parser.add_argument("--base-lr", type=float, default=base_defaults.lr)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--workspace", default=None, help="keep the workspace here (a rerun reuses finished cells)")
    parser.add_argument("--scorers", nargs="+", choices=("proxy", "base"), default=["proxy", "base"],
                        help="proxy: every candidate arm scored by the proxy; base: the token-clean comparison "
                             "(scored with the base)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    scratch = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="bench-arms-"))
    try:
        ws = Workspace.open(scratch)
        start = time.perf_counter()
        _, report, _ = build_pool(ws, args.rows, args.seed)
        proxy, _ = demo_proxy(ws, report.version, args.proxy_steps, args.seed)
        runs = [("proxy", proxy, args.arms, CANDIDATE_PARAMS, "demo-arms"),
                ("base", "base", list(TOKEN_CLEAN_ARMS), TOKEN_CLEAN_PARAMS, "demo-arms-token-clean")]
        runs = [run for run in runs if run[0] in args.scorers]
        for scorer_name, scorer, arms, all_params, out in runs:
            params = {k: v for k, v in all_params.items() if any(k.split(".")[0] in arm.split(",") for arm in arms)}
            config = AblationConfig(budget=args.budget, seeds=args.seeds, sft_steps=args.sft_steps,
                                    held_out=args.held_out, heldout_offset=args.heldout_offset, lr=args.lr, batch_tokens=args.batch_tokens,
                                    strategies=arms, params=params, seed=args.seed, out=out,
                                    base_config=BaseConfig(steps=args.base_steps, lr=args.base_lr, seed=args.seed))
            result = run_ablation(ws, report.version, scorer, config,
                                  say=lambda text: print(text, file=sys.stderr, flush=True))
            report_lines(result, scorer_name, params, args, time.perf_counter() - start)
    finally:
        if not args.workspace:
            shutil.rmtree(scratch, ignore_errors=True)


def report_lines(result, scorer: str, params: dict, args, seconds: float) -> None:
    compare = result.compare
    for arm in compare.arms:
        print(json.dumps({"arm": arm.strategy, "scorer": scorer, "metric": compare.metric, "seeds": arm.seeds,
                          "values": [round(v, 4) for v in arm.values], "mean": round(arm.mean, 4),
                          "sd": round(arm.sd, 4) if arm.sd == arm.sd else None,
                          "diff_vs_random": None if arm.diff_mean is None else round(arm.diff_mean, 4),
                          "diff_ci_t": arm.diff_ci_t, "wins_ties_losses": [arm.wins, arm.ties, arm.losses],
                          "faulty_share": {k: round(v, 4) for k, v in result.faulty_by_kind.get(arm.strategy,
                                                                                                {}).items()},
                          "budget": compare.budget, "sft_steps": args.sft_steps, "lr": args.lr,
                          "batch_tokens": args.batch_tokens, "base_steps": args.base_steps, "base_lr": args.base_lr,
                          "heldout_offset": args.heldout_offset, "params": params}), flush=True)
    base = compare.base
    print(json.dumps({"arm": "(base)", "scorer": scorer, "accuracy": base.metrics.get("accuracy") if base else None,
                      "base": result.base, "warmup": result.base_stats,
                      "pool_faulty_share": result.faulty_by_kind.get("pool"),
                      "near_duplicates": [result.near_found, result.near_planted],
                      "seconds": round(seconds, 1)}, default=str), flush=True)


if __name__ == "__main__":
    main()
