"""End to end on CPU with a real pretrained model (stories260K) on the demo task, kept short for CI.

SFT must raise the held-out likelihood of the reference solutions and half-teach the answer
format (25 steps, so the reward has room to grow); GRPO from that checkpoint must raise the
mean reward of its prompts over 20 steps. Measured on the way to these settings (docs/training.md):
with truncated completions masked the reward fell 0.20 -> 0.07 (only the completions that
finish carry a gradient), without the mask it rose to 0.48; at lr 1e-3 one seed in five
collapsed after 14 steps, at 5e-4 the gain was 0.12-0.18 on each of four seeds.
The full-size run, with held-out accuracy (0% -> 28% after 400 SFT steps) and GRPO's reward
(0.22 -> 0.45 over 30 steps), is `benchmarks/bench_train_demo.py`.
"""

from __future__ import annotations

import numpy as np
import pytest

from curate.demo.pool import make_pool

pytestmark = pytest.mark.slow


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _problems():
    pool = [r for r in make_pool(1500, seed=0) if r["difficulty"] == 1 and r["planted"] is None]
    return pool[:40], pool[40:]


def _heldout_nll(model: str, rows: list[dict]) -> float:
    from curate.lm.loading import load
    from curate.lm.scoring import token_logprobs
    from curate.lm.templates import encode_pair

    lm = load(model, dtype="float32", device="cpu")
    encoded = [encode_pair(r["question"], r["answer"], lm.tokenizer, "plain") for r in rows]
    return -float(np.mean(np.concatenate(list(token_logprobs(lm, encoded)))))


def _sample_rewards(model: str, rows: list[dict], reward) -> float:
    from curate.lm.generation import HFBackend, SamplingParams
    from curate.lm.loading import load

    lm = load(model, dtype="float32", device="cpu")
    outs = HFBackend(lm, batch_size=512, template="plain").generate(
        [r["prompt"] for r in rows], 8, SamplingParams(temperature=1.0, max_new_tokens=32, seed=7))
    texts = [c.text for group in outs for c in group]
    return float(np.mean(reward(None, texts, answer=[r["answer"] for r in rows for _ in range(8)])))


def test_sft_then_grpo_on_the_demo_task(stories_model, tmp_path):
    from curate.train.grpo import GRPOConfig, train_grpo
    from curate.train.rewards import format_reward, math_reward
    from curate.train.sft import SFTConfig, train_sft

    heldout, train = _problems()
    before = _heldout_nll(str(stories_model), heldout)
    sft_dir = tmp_path / "sft"
    train_sft(str(stories_model), [{"prompt": r["question"], "response": r["answer"]} for r in train], sft_dir,
              SFTConfig(steps=25, lr=5e-3, batch_tokens=2048, warmup=5, min_lr_ratio=0.1, template="plain",
                        save_every=0))
    after = _heldout_nll(str(sft_dir), heldout)
    assert after < 0.5 * before, (before, after)

    pool = [{"prompt": r["question"], "answer": r["true_answer"]} for r in train[:8]]

    def score(prompts, completions, **columns):  # the run's reward: answer match plus format
        return [m + 0.5 * f for m, f in zip(math_reward(prompts, completions, **columns),
                                            format_reward(prompts, completions))]

    start = _sample_rewards(str(sft_dir), pool, score)
    history = []
    train_grpo(str(sft_dir), pool, tmp_path / "grpo",
               GRPOConfig(steps=20, prompts_per_step=4, num_generations=8, max_completion_length=32, lr=5e-4,
                          mask_truncated_completions=False, template="plain", save_every=0),
               reward=score, progress=lambda s, m: history.append(m["reward"]))
    end = _sample_rewards(str(tmp_path / "grpo"), pool, score)
    assert len(history) == 20
    print(f"\nheld-out NLL {before:.3f} -> {after:.3f}; pool reward {start:.3f} -> {end:.3f}; "
          f"training reward {[round(h, 2) for h in history]}")
    assert end > start + 0.05, (start, end, history)
    assert np.mean(history[-5:]) > np.mean(history[:5]), history
