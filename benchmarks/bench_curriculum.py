"""Curricula on the pass-rate simulator, with how the ranking moves with its assumptions.

The simulator (curate.selectors.rl.sim) is a tool, not evidence: its learner is an
assumption. This script prints, for every strategy, the rollouts it needs to reach the
target skill relative to uniform (ratio = uniform's rollouts / the strategy's, > 1 means
fewer rollouts), and GRESO against plain dynamic sampling, under each gain rule (variance
p(1-p), sqrt, constant per mixed group) and difficulty spread (sd 3, 1.5, 1 on the logit
scale), with the loop's defaults (picks per step, decay 1). Real rollouts:
benchmarks/bench_loop.py.

    .venv/bin/python benchmarks/bench_curriculum.py --seeds 3
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from curate.selectors.rl.sim import GAIN_RULES, STRATEGIES, SimConfig, run_simulation

SPREADS = (3.0, 1.5, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=SimConfig.prompts)
    parser.add_argument("--target-skill", type=float, default=SimConfig.target_skill)
    parser.add_argument("--pick-every", default="step", choices=("step", "round"))
    args = parser.parse_args()
    base = SimConfig(prompts=args.prompts, target_skill=args.target_skill, pick_every=args.pick_every)
    for gain in GAIN_RULES:
        for spread in SPREADS:
            start = time.perf_counter()
            config = replace(base, gain=gain, difficulty_std=spread)
            runs = {s: [run_simulation(s, replace(config, seed=seed)) for seed in range(args.seeds)] for s in STRATEGIES}
            rollouts = {s: np.array([r.rollouts for r in runs[s]], dtype=float) for s in STRATEGIES}
            ratios = {s: uniform_ratio for s, uniform_ratio in
                      ((s, rollouts["uniform"] / rollouts[s]) for s in STRATEGIES)}
            print(json.dumps({
                "bench": "curriculum", "gain": gain, "difficulty_std": spread, "seeds": args.seeds,
                "pick_every": args.pick_every,
                "rollouts_uniform": round(float(rollouts["uniform"].mean())),
                "ratio_uniform_over": {s: f"{ratios[s].mean():.2f} +- {ratios[s].std(ddof=1):.2f}"
                                       for s in STRATEGIES if s != "uniform"},
                "greso_vs_dynamic": round(float((rollouts["dynamic"] / rollouts["greso"]).mean()), 2),
                "reached": {s: f"{sum(r.reached for r in runs[s])}/{args.seeds}" for s in STRATEGIES},
                "zero_var_fraction": {s: round(float(np.mean([r.zero_var_fraction for r in runs[s]])), 3)
                                      for s in STRATEGIES},
                "seconds": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
