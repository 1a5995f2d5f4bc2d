"""curate's GRPO against TRL's GRPOTrainer: same model, prompts, rewards, batch and steps, in one process.

Both start from the same weights (by default stories260K and then SmolLM2-135M-Instruct, a real
135M Llama read from its GGUF file and dequantised once to a float32 folder both trainers
open; `--model` repeated picks others), take GSM8K training questions,
sample G = 8 completions of at most 64 tokens per prompt at temperature 1, and run the
same objective (loss_type dapo, scale_rewards group, beta 0, epsilon 0.2, one iteration,
truncated completions kept in the loss: TRL's defaults) with the same learning rate. The
dataset holds exactly steps x prompts_per_step questions, so each trainer sees every
question once. The reward is dense (the GSM8K answer match plus a small term for distinct
words) so every group has variance and neither trainer can skip work; a second curate line
with the sparse `math` reward alone shows what skipping zero-gradient groups saves.

The first step of each run is warm-up and is not timed. Printed, one JSON line each:
seconds per step, completion (rollout) tokens per second of step time, generation-only
tokens per second, for curate and TRL, and their ratio (curate / TRL throughput).

    python benchmarks/bench_grpo.py                   # stories260K then SmolLM2, 4 prompts x 8, 6 timed steps
    python benchmarks/bench_grpo.py --model ../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf \
        --steps 2 --prompts 2 --generations 4 --max-completion-length 32   # SmolLM2 alone, quick
    python benchmarks/bench_grpo.py --threads 2 --steps 10
    python benchmarks/bench_grpo.py --random-qwen2 --device cuda --dtype bfloat16   # the GPU check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("CURATE_SHARED", REPO.parent / "shared"))

import torch  # noqa: E402

from curate.train.answers import is_correct  # noqa: E402


def dense_reward(prompts, completions, answer, **kwargs):
    """GSM8K answer match, plus up to 0.1 for distinct words (so groups are never all equal)."""
    return [float(is_correct(a, c)) + 0.1 * min(1.0, len(set(c.split())) / 32) for c, a in zip(completions, answer)]


def math_only(prompts, completions, answer, **kwargs):
    return [float(is_correct(a, c)) for c, a in zip(completions, answer)]


def gsm8k_rows(count: int) -> list[dict]:
    path = SHARED / "data" / "gsm8k" / "train.jsonl"
    rows = []
    with open(path) as fh:
        for line in fh:
            row = json.loads(line)
            rows.append({"prompt": row["question"], "answer": row["answer"].rsplit("####", 1)[1].strip()})
            if len(rows) == count:
                break
    return rows


def random_qwen2(folder: Path) -> Path:
    """A randomly initialised Qwen2-0.5B-shaped model (with stories260K's tokenizer: ids < 512 are used)."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(SHARED / "models" / "stories260K")).save_pretrained(str(folder))
    return folder


def peak_memory_gb(device: str) -> float | None:
    if device.startswith("cuda") and torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return None


def run_curate(model: str, rows: list[dict], args, reward, label: str) -> dict:
    from curate.train.grpo import GRPOConfig, train_grpo

    out = Path(tempfile.mkdtemp(prefix="bench-curate-"))
    shutil.rmtree(out)
    config = GRPOConfig(steps=args.steps + 1, prompts_per_step=args.prompts, num_generations=args.generations,
                        max_completion_length=args.max_completion_length, max_prompt_length=None, lr=args.lr,
                        loss_type="dapo", scale_rewards="group", beta=0.0, epsilon=0.2, num_iterations=1,
                        mask_truncated_completions=False, template="plain", save_every=0, seed=0,
                        dtype=args.dtype, device=args.device, batch_tokens=args.batch_tokens)
    steps = []
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    train_grpo(model, rows, out, config, reward=reward, progress=lambda s, m: steps.append(m))
    shutil.rmtree(out, ignore_errors=True)
    timed = steps[1:]
    seconds = sum(m["step_time"] for m in timed)
    tokens = sum(m["completions/mean_length"] * args.prompts * args.generations for m in timed)
    generation = sum(m["generation_time"] for m in timed)
    return {"trainer": label, "steps": len(timed), "seconds_per_step": round(seconds / len(timed), 3),
            "rollout_tokens_per_s": round(tokens / seconds, 1),
            "generation_tokens_per_s": round(tokens / generation, 1),
            "mean_completion_length": round(tokens / len(timed) / (args.prompts * args.generations), 1),
            "mean_reward": round(sum(m["reward"] for m in timed) / len(timed), 4),
            "peak_memory_gb": peak_memory_gb(args.device)}


def run_trl(model_path: str, rows: list[dict], args) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from curate.lm.loading import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=resolve_dtype(args.dtype, device))
    dataset = Dataset.from_list([{"prompt": r["prompt"] + "\n", "answer": r["answer"]} for r in rows])
    out = tempfile.mkdtemp(prefix="bench-trl-")
    config = GRPOConfig(output_dir=out, per_device_train_batch_size=args.prompts * args.generations,
                        gradient_accumulation_steps=1, num_generations=args.generations,
                        max_completion_length=args.max_completion_length, max_steps=args.steps + 1,
                        learning_rate=args.lr, lr_scheduler_type="constant", loss_type="dapo", scale_rewards="group",
                        beta=0.0, epsilon=0.2, num_iterations=1, mask_truncated_completions=False, temperature=1.0,
                        logging_steps=1, report_to=[], save_strategy="no", seed=0, disable_tqdm=True,
                        use_cpu=device.type == "cpu", bf16=args.dtype in ("bfloat16", "bf16"), shuffle_dataset=True)
    trainer = GRPOTrainer(model=model, reward_funcs=dense_reward, args=config, train_dataset=dataset,
                          processing_class=tokenizer)
    generation = {"seconds": 0.0, "calls": []}
    original = model.generate

    def timed_generate(*a, **k):
        start = time.perf_counter()
        result = original(*a, **k)
        generation["calls"].append(time.perf_counter() - start)
        return result

    model.generate = timed_generate

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.start = [], 0.0

        def on_step_begin(self, *a, **k):
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.start)

    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.remove_callback(PrinterCallback)  # its per-step log lines would mix with the JSON results
    trainer.remove_callback(ProgressCallback)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    shutil.rmtree(out, ignore_errors=True)
    logs = [entry for entry in trainer.state.log_history if "completions/mean_length" in entry]
    timed, timed_logs = timer.times[1:], logs[1:]
    seconds = sum(timed)
    tokens = sum(entry["completions/mean_length"] * args.prompts * args.generations for entry in timed_logs)
    return {"trainer": "trl", "steps": len(timed), "seconds_per_step": round(seconds / len(timed), 3),
            "rollout_tokens_per_s": round(tokens / seconds, 1),
            "generation_tokens_per_s": round(tokens / sum(generation["calls"][1:]), 1),
            "mean_completion_length": round(tokens / len(timed) / (args.prompts * args.generations), 1),
            "mean_reward": round(sum(entry["reward"] for entry in timed_logs) / len(timed_logs), 4),
            "peak_memory_gb": peak_memory_gb(args.device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="model folder or .gguf file; repeat for several "
                        "(default: stories260K and SmolLM2-135M-Instruct from ../shared)")
    parser.add_argument("--random-qwen2", action="store_true", help="use a random Qwen2-0.5B-shaped model")
    parser.add_argument("--steps", type=int, default=6, help="timed steps (one more runs as warm-up)")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--max-completion-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both trainers")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=1, help="alternate TRL and curate runs this many times")
    parser.add_argument("--skip-sparse", action="store_true", help="skip the extra curate run with the math reward")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    scratch = Path(tempfile.mkdtemp(prefix="bench-grpo-"))
    if args.random_qwen2:
        models = [("random-qwen2-0.5b", str(random_qwen2(scratch / "qwen2")))]
    else:
        models = [(Path(m).name, hf_folder(m, scratch)) for m in args.model or DEFAULT_MODELS if Path(m).exists()]
    for name, model in models:
        compare(name, model, args)
    shutil.rmtree(scratch, ignore_errors=True)


DEFAULT_MODELS = [str(SHARED / "models" / "stories260K"),
                  str(SHARED / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf")]


def hf_folder(model: str, scratch: Path) -> str:
    """A model folder both trainers open: a .gguf file is dequantised once (curate.lm.gguf_cache)."""
    from curate.lm.gguf_cache import cached_folder, is_gguf

    return str(cached_folder(Path(model), scratch / "gguf")[0]) if is_gguf(model) else model


def compare(name: str, model: str, args) -> None:
    """TRL and curate alternately on one model, then curate with the sparse reward; JSON lines."""
    rows = gsm8k_rows((args.steps + 1) * args.prompts)
    setting = {"model": name, "device": args.device,
               "dtype": args.dtype, "threads": args.threads, "prompts_per_step": args.prompts,
               "generations": args.generations, "max_completion_length": args.max_completion_length}
    ratios = []
    for repeat in range(args.repeats):  # alternate the two so that machine noise hits both alike
        trl = run_trl(model, rows, args)
        print(json.dumps({**setting, "repeat": repeat, **trl}), flush=True)
        ours = run_curate(model, rows, args, dense_reward, "curate")
        print(json.dumps({**setting, "repeat": repeat, **ours}), flush=True)
        ratios.append(ours["rollout_tokens_per_s"] / trl["rollout_tokens_per_s"])
        print(json.dumps({**setting, "repeat": repeat, "comparison": "curate/trl",
                          "throughput_ratio": round(ratios[-1], 2),
                          "step_time_ratio": round(trl["seconds_per_step"] / ours["seconds_per_step"], 2),
                          "generation_ratio": round(ours["generation_tokens_per_s"] / trl["generation_tokens_per_s"],
                                                    2)}), flush=True)
    if args.repeats > 1:
        print(json.dumps({**setting, "comparison": "curate/trl", "repeats": args.repeats,
                          "median_throughput_ratio": round(statistics.median(ratios), 2)}), flush=True)
    if not args.skip_sparse:
        sparse = run_curate(model, rows, args, math_only, "curate (math reward only: zero-advantage groups skipped)")
        print(json.dumps({**setting, **sparse}), flush=True)


if __name__ == "__main__":
    main()
