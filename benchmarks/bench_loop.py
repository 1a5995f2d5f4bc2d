"""Curricula on real rollouts: `curate loop` (run_loop, the function behind the command) on the demo task.

The policy is the demo's proxy model (a small LM trained on the demo pool, as `curate demo`
makes it), the prompts 600 fresh demo problems (`curate.demo_loop.fresh_prompts`; 593 distinct), the reward
the demo's `demo_reward` (math + 0.5 format + 0.5 grounding, in [0, 2]); a rollout succeeds
when it scores >= --success-threshold (0.5, the ledger's default; fixed before any curriculum
was compared, as the threshold at which the starting model's pass rate lies in 10-60%: 28.5%
of the reference rollouts pass 0.5, 2.2% pass 1.0), which is what the curricula count.
Strategies: uniform, thompson (MoPPS), greso (with dynamic sampling, as GRESO is defined),
adarft (static difficulty from a reference run of the starting model: `collect_rollouts`
under the key `reference`, 8 samples a prompt, not counted in the budget), and plain dynamic
sampling (uniform picks + DAPO's filter). Picks per GRPO step (the default). Each run goes
round by round until it has spent --budget rollouts (a round may overshoot: the actual count
is printed); the held-out split (the loop's own, by id hash and seed) is evaluated greedily
after every round. Seeds pair the runs: one seed gives every strategy the same held-out set.

Prints one JSON line per run (`--summary FILE` instead reads those lines and prints, per
strategy, held-out reward mean +- sd, the paired difference with uniform, rollouts to reach
the fixed held-out reward --reach, and the share of rollouts in zero-variance groups).

    python benchmarks/bench_loop.py --strategies uniform,thompson --seeds 0,1,2 > runs.jsonl
    python benchmarks/bench_loop.py --summary runs.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

STRATEGIES = ("uniform", "thompson", "greso", "adarft", "dynamic")


def prepare(root: Path, success_threshold: float) -> tuple[object, str, Path]:
    """The workspace, the prompts' dataset ref and the proxy folder (cached under `root`)."""
    from curate.catalog.ingest import IngestOptions, ingest
    from curate.catalog.versions import resolve
    from curate.catalog.workspace import Workspace
    from curate.demo import make_pool
    from curate.demo_loop import DEMO_REWARD, fresh_prompts
    from curate.train.collect import CollectConfig, collect_rollouts
    from curate.train.proxy import ProxyConfig, ensure_proxy

    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace.open(root / "ws")
    pool_file = root / "pool.jsonl"
    if not pool_file.exists():
        pool_file.write_text("".join(json.dumps(r) + "\n" for r in make_pool(2000, 0)))
    try:
        pool = resolve(ws, "demo")
    except Exception:
        pool = ingest(ws, str(pool_file), IngestOptions(name="demo", license="CC0-1.0")).version
    proxy, _ = ensure_proxy(ws, pool, ProxyConfig(steps=80, seed=0, max_examples=20_000))
    prompts_file = root / "prompts.jsonl"
    if not prompts_file.exists():
        exclude = set(pool.scan().select("prompt").collect()["prompt"].to_list())
        prompts_file.write_text("".join(json.dumps(r) + "\n" for r in fresh_prompts(600, 0, exclude)))
    try:
        prompts = resolve(ws, "bench-prompts")
    except Exception:
        prompts = ingest(ws, str(prompts_file), IngestOptions(name="bench-prompts", mapping={"prompt": "question"},
                                                               license="CC0-1.0")).version
    collect_rollouts(ws, prompts, str(proxy), DEMO_REWARD,
                     CollectConfig(num_generations=8, max_completion_length=32, success_threshold=success_threshold,
                                   model_key="reference", dtype="float32", device="cpu"))
    return ws, prompts.ref, proxy


def run_one(ws, ref: str, proxy: Path, strategy: str, seed: int, args) -> dict:
    from curate.catalog.ledger import ledger_key
    from curate.demo_loop import DEMO_REWARD, demo_loop_config
    from curate.loop import run_loop
    from curate.selectors.rl.difficulty import CurriculumParams

    mode = "uniform" if strategy == "dynamic" else strategy
    params = CurriculumParams(reference=ledger_key("reference", [(DEMO_REWARD, 1.0)], args.success_threshold)
                              if strategy == "adarft" else None)
    config = replace(demo_loop_config(1, seed), strategy=mode, steps_per_round=args.steps_per_round,
                     dynamic_sampling=True if strategy in ("dynamic", "greso") else None,
                     success_threshold=args.success_threshold, curriculum=params,
                     model_key=f"bench-{args.tag}{strategy}-s{seed}", dtype="float32")
    out = Path(args.root) / "runs" / f"{strategy}-s{seed}"
    start = time.perf_counter()
    rounds = 0
    report = None
    while rounds < args.max_rounds:
        rounds += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = run_loop(ws, ref, str(proxy), out, replace(config, rounds=rounds), DEMO_REWARD,
                              resume=(out / "loop.json").exists())
        if report.state["rollouts"] >= args.budget:
            break
    rows = report.rows
    spent = sum(r["rollouts"] for r in rows)
    curve = [(r["rollouts_total"], r["eval_reward"]) for r in rows]
    return {"bench": "loop", "strategy": strategy, "seed": seed, "rounds": len(rows), "rollouts": spent,
            "eval_before": report.eval_before, "eval_after": rows[-1]["eval_reward"], "curve": curve,
            "zero_var_rollout_share": sum(r["zero_var_share"] * r["rollouts"] for r in rows) / max(1, spent),
            "train_reward_last": rows[-1]["train_reward"], "seconds": round(time.perf_counter() - start, 1),
            "final_state": {k: rows[-1].get(k) for k in ("p_easy", "p_hard", "adarft_target")}}


def summarize(path: Path, reach: float | None) -> None:
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    runs = [r for r in runs if r.get("bench") == "loop"]
    by = {(r["strategy"], r["seed"]): r for r in runs}
    base = reach if reach is not None else float(np.mean([r["eval_before"] for r in runs])) + 0.05
    for strategy in STRATEGIES:
        mine = sorted((r for r in runs if r["strategy"] == strategy), key=lambda r: r["seed"])
        if not mine:
            continue
        after = np.array([r["eval_after"] for r in mine])
        paired = [r["eval_after"] - by[("uniform", r["seed"])]["eval_after"] for r in mine
                  if ("uniform", r["seed"]) in by]
        reached = [next((n for n, v in r["curve"] if v >= base), None) for r in mine]
        print(json.dumps({
            "bench": "loop_summary", "strategy": strategy, "seeds": len(mine),
            "rollouts_mean": round(float(np.mean([r["rollouts"] for r in mine]))),
            "eval_before_mean": round(float(np.mean([r["eval_before"] for r in mine])), 4),
            "eval_after_mean": round(float(after.mean()), 4),
            "eval_after_sd": round(float(after.std(ddof=1)), 4) if len(after) > 1 else None,
            "paired_diff_vs_uniform_mean": round(float(np.mean(paired)), 4) if paired else None,
            "paired_diff_vs_uniform_sd": round(float(np.std(paired, ddof=1)), 4) if len(paired) > 1 else None,
            "reach_eval_reward": round(base, 4),
            "rollouts_to_reach": reached,
            "zero_var_rollout_share_mean": round(float(np.mean([r["zero_var_rollout_share"] for r in mine])), 3),
            "seconds_mean": round(float(np.mean([r["seconds"] for r in mine])), 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", type=int, default=1536, help="rollouts per run (a round may overshoot)")
    parser.add_argument("--max-rounds", type=int, default=8)
    parser.add_argument("--steps-per-round", type=int, default=2)
    parser.add_argument("--success-threshold", type=float, default=0.5)
    parser.add_argument("--root", default="/tmp/curate-bench-loop")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tag", default="", help="prefix of the runs' ledger keys (a fresh set of runs)")
    parser.add_argument("--summary", type=Path, help="summarize the JSON lines of earlier runs")
    parser.add_argument("--reach", type=float, help="held-out reward to reach (default: mean start + 0.05)")
    args = parser.parse_args()
    if args.summary:
        summarize(args.summary, args.reach)
        return
    import torch

    torch.set_num_threads(args.threads)
    ws, ref, proxy = prepare(Path(args.root), args.success_threshold)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for strategy in args.strategies.split(","):
            print(json.dumps(run_one(ws, ref, proxy, strategy, seed, args)), flush=True)


if __name__ == "__main__":
    main()
