"""The demo's last part: a few rounds of the closed loop (`curate loop`) on fresh prompts.

The policy is the demo's proxy model, a small LM trained on the pool (docs/rl.md, "The
demo's loop", says why not one of the SFT models). The prompts are new demo problems
(another seed, none of them in the pool), ingested as `demo-prompts` with their final answers,
so the rewards can check completions. The reward is `demo_reward`: 1 for the right final
number (`math`), plus 0.5 for a final line in the `#### N` form (`format`), plus 0.5 times the
share of the question's numbers that the completion uses (a verifiable shaping term: a word
problem's solution starts from its given quantities). The tiny demo model rarely gets the
number right, so the two shaping terms give it a signal it can climb in a few rounds.
Each round the curriculum (`thompson`) picks
prompts from the prompt ledger, GRPO trains on their rollouts, every rollout goes to the
ledger, and the held-out prompts are evaluated greedily: the round table shows whether the
reward rises. Everything runs through `curate.loop.run_loop`, the function behind `curate loop`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.workspace import Workspace
from curate.loop import LoopConfig, LoopReport, run_loop
from curate.train.rewards import completion_text, format_reward, math_reward

DEMO_REWARD = "curate.demo.loop:demo_reward"


_NUMBER = re.compile(r"\d+")


def grounding(prompt: str, completion: str) -> float:
    """Share of the distinct numbers in `prompt` that also occur as numbers in `completion`."""
    given = set(_NUMBER.findall(prompt))
    return len(given & set(_NUMBER.findall(completion))) / len(given) if given else 0.0


def demo_reward(prompts, completions, **columns) -> list[float | None]:
    """`math` + 0.5 × `format` + 0.5 × `grounding` (see the module docstring)."""
    texts = [completion_text(c) for c in completions]
    return [None if m is None else m + 0.5 * f + 0.5 * grounding(completion_text(p), t)
            for m, f, p, t in zip(math_reward(prompts, completions, **columns), format_reward(prompts, completions),
                                  prompts, texts)]


def demo_loop_config(rounds: int, seed: int = 0) -> LoopConfig:
    """Settings measured to fit the demo's time budget (docs/rl.md: the demo's loop)."""
    return LoopConfig(rounds=rounds, strategy="thompson", prompts_per_round=16, steps_per_round=4,
                      num_generations=8, max_completion_length=32, lr=5e-4, eval_size=64,
                      mask_truncated_completions=False, seed=seed)


def fresh_prompts(count: int, seed: int, exclude: set[str], difficulties: tuple[int, ...] = (1,)) -> list[dict]:
    """Demo problems of the given difficulties from another seed, none of whose questions is in `exclude`."""
    from curate.demo.pool import fresh_problems

    return [{"question": r["question"], "answer": r["true_answer"], "domain": r["domain"],
             "difficulty": r["difficulty"]}
            for r in fresh_problems(count, seed + 2000, exclude, draw=count * 6, difficulties=difficulties)]


def loop_rounds(
    ws: Workspace,
    model_dir: Path,
    exclude: set[str],
    config: LoopConfig,
    prompts: int = 600,
    reward: str = DEMO_REWARD,
    say: Callable[[str], None] = lambda _: None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> LoopReport:
    """Ingest fresh prompts and run `config.rounds` loop rounds from `model_dir`."""
    demo_dir = ws.root / "demo"
    path = demo_dir / "prompts.jsonl"
    with open(path, "w") as fh:
        for row in fresh_prompts(prompts, config.seed, exclude):
            fh.write(json.dumps(row) + "\n")
    version = ingest(ws, str(path), IngestOptions(name="demo-prompts", mapping={"prompt": "question"},
                                                  license="CC0-1.0")).version
    say(f"loop: {version.ref}, {version.rows} fresh prompts; policy {model_dir.name}")
    out = demo_dir / f"loop-{model_dir.name}"
    done = 0

    def on_round(row: dict) -> None:
        nonlocal done
        done += 1
        say(f"loop round {row['round']}: train reward {row['train_reward']:.3f}, held-out reward "
            f"{row['eval_reward']:.3f}, {row['rollouts']} rollouts")
        if progress:
            progress("loop rounds", done, config.rounds)

    return run_loop(ws, version.ref, str(model_dir), out, config, reward,
                    resume=(out / "loop.json").exists(), say=say, on_round=on_round)
