"""End to end on CPU: SFT of stories260K on the demo task raises held-out accuracy; GRPO from it raises mean reward.

The demo task is curate's synthetic arithmetic word problems (`curate.demo.make_pool`, GSM8K
layout); this script uses its one-step problems (numbers up to 20). Everything goes through
the catalog as a user's run would: the pools are ingested into a temporary workspace, SFT
trains from a dataset version, and GRPO writes its rollouts to the prompt ledger.

1. Held-out accuracy: greedy answers to 100 held-out problems, exact final-number match
   (`curate.train.answers`), for stories260K before and after SFT (default 400 steps).
2. GRPO (default 30 steps, 16 prompts x 8 completions, the `math` reward) from the SFT model
   on a pool of 64 training prompts: the mean reward of 8 sampled completions per pool prompt
   (temperature 1, fixed seed) before and after, and the per-step training reward.
   Held-out greedy accuracy after GRPO is printed too.

Prints one JSON line per result.

    python benchmarks/bench_train_demo.py
    python benchmarks/bench_train_demo.py --sft-steps 200 --grpo-steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("CURATE_SHARED", REPO.parent / "shared"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from curate.catalog.ingest import IngestOptions, ingest  # noqa: E402
from curate.catalog.ledger import read_stats  # noqa: E402
from curate.catalog.workspace import Workspace  # noqa: E402
from curate.demo.pool import make_pool  # noqa: E402
from curate.lm.generation import HFBackend, SamplingParams  # noqa: E402
from curate.lm.loading import load  # noqa: E402
from curate.train.grpo import GRPOConfig, train_grpo  # noqa: E402
from curate.train.rewards import math_reward  # noqa: E402
from curate.train.sft import SFTConfig, train_sft  # noqa: E402


def mean_reward(model: str, rows: list[dict], samples: int, temperature: float, max_new_tokens: int = 40) -> float:
    """Mean `math` reward of `samples` completions per row (greedy when temperature is 0)."""
    lm = load(model, dtype="float32", device="cpu")
    backend = HFBackend(lm, batch_size=1024, template="plain")
    outs = backend.generate([r["prompt"] for r in rows], samples,
                            SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, seed=123))
    texts = [c.text for group in outs for c in group]
    return float(np.mean(math_reward(None, texts, answer=[r["answer"] for r in rows for _ in range(samples)])))


def write_pool(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps({"question": r["question"], "answer": r["answer"]}) + "\n" for r in rows))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(SHARED / "models" / "stories260K"))
    parser.add_argument("--sft-steps", type=int, default=400)
    parser.add_argument("--sft-lr", type=float, default=4e-3)
    parser.add_argument("--grpo-steps", type=int, default=30)
    parser.add_argument("--grpo-lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    held = {r["question"]: r for r in make_pool(600, seed=99) if r["difficulty"] == 1}
    held_rows = [{"prompt": q, "answer": r["true_answer"]} for q, r in list(held.items())[:100]]
    sft_pool = [r for r in make_pool(3000, seed=0) if r["difficulty"] == 1 and r["planted"] is None
                and r["question"] not in held][:2000]
    rl_pool = [r for r in make_pool(3000, seed=5) if r["difficulty"] == 1 and r["planted"] is None
               and r["question"] not in held][:64]
    scratch = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    try:
        ws = Workspace.open(scratch / "ws")
        sft_data = ingest(ws, str(write_pool(scratch / "sft.jsonl", sft_pool)), IngestOptions(name="demo-sft")).version
        rl_data = ingest(ws, str(write_pool(scratch / "rl.jsonl", rl_pool)), IngestOptions(name="demo-rl")).version
        rl_rows = [{"prompt": r["question"], "answer": r["true_answer"]} for r in rl_pool]

        before = mean_reward(args.model, held_rows, 1, 0.0)
        start = time.perf_counter()
        sft = train_sft(args.model, sft_data, scratch / "sft",
                        SFTConfig(steps=args.sft_steps, lr=args.sft_lr, batch_tokens=4096, warmup=10,
                                  min_lr_ratio=0.1, template="plain", save_every=0))
        sft_seconds = time.perf_counter() - start
        after = mean_reward(str(scratch / "sft"), held_rows, 1, 0.0)
        print(json.dumps({"result": "sft_heldout_accuracy", "model": Path(args.model).name,
                          "train_examples": sft["examples"], "steps": args.sft_steps, "heldout": len(held_rows),
                          "accuracy_before": before, "accuracy_after": after, "final_loss": round(sft["final_loss"], 4),
                          "seconds": round(sft_seconds, 1)}), flush=True)

        pool_before = mean_reward(str(scratch / "sft"), rl_rows, 8, 1.0, 24)
        curve: list[float] = []
        start = time.perf_counter()
        grpo = train_grpo(str(scratch / "sft"), rl_data, scratch / "grpo",
                          GRPOConfig(steps=args.grpo_steps, prompts_per_step=16, num_generations=8,
                                     max_completion_length=24, lr=args.grpo_lr, template="plain", save_every=0),
                          reward="math", ws=ws, progress=lambda s, m: curve.append(m["reward"]))
        grpo_seconds = time.perf_counter() - start
        pool_after = mean_reward(str(scratch / "grpo"), rl_rows, 8, 1.0, 24)
        heldout_after = mean_reward(str(scratch / "grpo"), held_rows, 1, 0.0)
        ledger = read_stats(ws, grpo["model_key"])
        print(json.dumps({"result": "grpo_mean_reward", "steps": args.grpo_steps, "prompts": len(rl_rows),
                          "pool_mean_reward_before": pool_before, "pool_mean_reward_after": pool_after,
                          "train_reward_first5": round(float(np.mean(curve[:5])), 4),
                          "train_reward_last5": round(float(np.mean(curve[-5:])), 4),
                          "train_reward_curve": [round(x, 3) for x in curve],
                          "heldout_accuracy_after_grpo": heldout_after,
                          "ledger_prompts": ledger.height, "ledger_attempts": int(ledger["attempts"].sum()),
                          "seconds": round(grpo_seconds, 1)}), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
