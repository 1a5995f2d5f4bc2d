"""Curricula on the pass-rate simulator: rollouts to reach a target skill, per strategy.

Every strategy runs with the same seeds and the same simulated pool (curate.selectors.rl.sim;
its docstring states the learning-rule assumption). Prints one JSON line per strategy
(mean over seeds, with the ratio of uniform's rollouts to the strategy's), then one line
comparing GRESO with plain dynamic sampling at equal effective batch.

    .venv/bin/python benchmarks/bench_curriculum.py --seeds 5
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from curate.selectors.rl.sim import STRATEGIES, SimConfig, run_simulation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=SimConfig.prompts)
    parser.add_argument("--target-skill", type=float, default=SimConfig.target_skill)
    args = parser.parse_args()
    base = SimConfig(prompts=args.prompts, target_skill=args.target_skill)
    summary = {}
    for strategy in STRATEGIES:
        start = time.perf_counter()
        runs = [run_simulation(strategy, replace(base, seed=seed)) for seed in range(args.seeds)]
        summary[strategy] = {
            "rollouts": float(np.mean([r.rollouts for r in runs])),
            "steps": float(np.mean([r.steps for r in runs])),
            "zero_var_fraction": float(np.mean([r.zero_var_fraction for r in runs])),
            "reached": sum(r.reached for r in runs),
            "seconds": round(time.perf_counter() - start, 2),
        }
    uniform = summary["uniform"]["rollouts"]
    for strategy, row in summary.items():
        print(json.dumps({"bench": "curriculum", "strategy": strategy, "seeds": args.seeds,
                          "rollouts_to_target": round(row["rollouts"]), "steps": round(row["steps"], 1),
                          "zero_var_rollout_fraction": round(row["zero_var_fraction"], 3),
                          "reached": f"{row['reached']}/{args.seeds}",
                          "ratio_uniform_over_strategy": round(uniform / row["rollouts"], 3),
                          "beats_uniform": row["rollouts"] < uniform}))
    dynamic, greso = summary["dynamic"], summary["greso"]
    print(json.dumps({"bench": "curriculum", "comparison": "greso_vs_dynamic_sampling", "effective_batch": base.batch,
                      "rollouts_dynamic": round(dynamic["rollouts"]), "rollouts_greso": round(greso["rollouts"]),
                      "ratio": round(dynamic["rollouts"] / greso["rollouts"], 3), "target_ratio": 1.5}))


if __name__ == "__main__":
    main()
