"""curate's SFT against TRL's SFTTrainer: tokens per second on the same data, model, batch, steps and schedule.

Both trainers get exactly the same token sequences: GSM8K training rows (question -> prompt,
answer -> response) encoded once by curate (`curate.train.data.encode_sft`, the model's chat
template where it has one, EOS appended, truncated to the model's context); TRL receives them
pre-tokenized, with a `completion_mask`, and `completion_only_loss=True`, so both take the loss
on response tokens only. curate runs through `curate.train.sft.train_sft`, the function behind
`curate train sft`. Same float32 weights, AdamW (fused, TRL's default), lr 2e-5 with one warmup
step then cosine, gradient clipping at 1.0, no weight decay, no checkpoints in the timed span.

Effective batch = real tokens per optimizer step. curate packs whole examples into one row of at
most `--batch-tokens` tokens per step (`--curate-padded` adds a run with its length-sorted padded
batches of at most `--batch-tokens` padded tokens). TRL runs in two modes:
- `trl`: its default collation (right padding per batch, shuffled rows), with as many rows per
  step as fill `--batch-tokens` on average (batch_tokens / mean row length);
- `trl-packed`: its best-fit-decreasing packing (`packing=True`, padding-free, position ids),
  one packed row of at most `--batch-tokens` tokens per step.
Every printed line says the mean real tokens per step of each run, so the batches can be compared.

Tokens are counted the same way for all: real (non-pad) tokens of the inputs a step processes,
prompt and response. The first step of a run is warm-up; the clock runs from the end of step 1
to the end of the last step (data loading, logging and everything else in the loop included).
The runs alternate (curate, [curate-padded,] trl, trl-packed, then the reverse order) so machine
noise hits all.
One JSON line per run, then one per model with every trainer's tokens/s and the ratios (curate /
other), per wall second and per CPU second of the process (the second is less disturbed by other
jobs on a shared machine; every trainer runs on `--threads` torch threads).

SmolLM2-135M-Instruct ships as a 4-bit GGUF: it is loaded with transformers' GGUF support
(the `gguf` package), dequantised to float32 and saved as an ordinary model folder in a
temporary directory that both trainers load.

    python benchmarks/bench_sft.py                                  # both models, defaults below
    python benchmarks/bench_sft.py --models stories260K --steps 20 --repeats 2 --curate-padded
    python benchmarks/bench_sft.py --models smollm2 --steps 3 --batch-tokens 2048
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

SMOLLM2_GGUF = SHARED / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
# Per model: timed steps, tokens per step, rows to tokenise (enough that no row repeats in the timed span).
DEFAULTS = {"stories260K": {"steps": 10, "batch_tokens": 4096, "rows": 3000},
            "smollm2": {"steps": 3, "batch_tokens": 2048, "rows": 400}}
LR, WARMUP = 2e-5, 1


def quiet_setup(threads: int) -> None:
    """Torch threads, and no library warnings or progress bars between the JSON lines."""
    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()


def gsm8k_rows(count: int) -> list[dict]:
    rows = []
    with open(SHARED / "data" / "gsm8k" / "train.jsonl") as fh:
        for line in fh:
            row = json.loads(line)
            rows.append({"prompt": row["question"], "response": row["answer"]})
            if len(rows) == count:
                break
    return rows


def model_folder(name: str, scratch: Path) -> Path:
    """A float32 Hugging Face folder for `name`; the GGUF is dequantised into `scratch`."""
    if name == "stories260K":
        return SHARED / "models" / "stories260K"
    if name != "smollm2":
        raise SystemExit(f"unknown model {name!r}: stories260K or smollm2")
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = scratch / "smollm2-135m-instruct-f32"
    source, file = str(SMOLLM2_GGUF.parent), SMOLLM2_GGUF.name
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=file)
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=file, dtype=torch.float32)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)  # a GGUF-loaded model refuses save_pretrained; its weights do not
    plain = LlamaForCausalLM(LlamaConfig.from_dict(config))
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def encoded(model: Path, rows: list[dict]):
    """The examples exactly as curate's trainer tokenises them (the same call train_sft makes)."""
    from curate.lm.loading import load
    from curate.train.data import encode_sft

    lm = load(str(model), dtype="float32", device="cpu")
    examples, _ = encode_sft(rows, lm.tokenizer, "auto", lm.max_length)
    return examples, lm.max_length


def clock() -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds): the second is what load from other processes disturbs least."""
    return time.perf_counter(), time.process_time()


def summarise(label: str, step_ends: list[tuple[float, float]], step_tokens: list[int], losses: list[float]) -> dict:
    """Throughput over steps 2..N (step 1 is warm-up), per wall second and per CPU second."""
    seconds = step_ends[-1][0] - step_ends[0][0]
    cpu_seconds = step_ends[-1][1] - step_ends[0][1]
    tokens = sum(step_tokens[1:])
    timed = len(step_ends) - 1
    return {"trainer": label, "timed_steps": timed, "seconds_per_step": round(seconds / timed, 3),
            "tokens_per_step": round(tokens / timed, 1), "tokens_per_s": round(tokens / seconds, 1),
            "tokens_per_cpu_s": round(tokens / cpu_seconds, 1), "mean_loss": round(statistics.fmean(losses[1:]), 4)}


def run_curate(model: Path, rows: list[dict], args, packing: bool = True) -> dict:
    from curate.train.sft import SFTConfig, train_sft

    out = Path(tempfile.mkdtemp(prefix="bench-sft-curate-")) / "run"
    config = SFTConfig(steps=args.steps + 1, lr=LR, warmup=WARMUP, lr_schedule="cosine", batch_tokens=args.batch_tokens,
                       grad_accum=1, grad_clip=1.0, weight_decay=0.0, save_every=0, seed=0, dtype="float32",
                       device="cpu", template="auto", packing=packing)
    ends, tokens, losses = [], [], []

    def progress(step: int, metrics: dict) -> None:
        ends.append(clock())
        tokens.append(int(metrics["input_tokens"]))
        losses.append(metrics["loss"])

    train_sft(str(model), rows, out, config, progress=progress)
    shutil.rmtree(out.parent, ignore_errors=True)
    return summarise("curate" if packing else "curate-padded", ends, tokens, losses)


def run_trl(model: Path, examples, max_length: int, args, packed: bool) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    network = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32)
    dataset = Dataset.from_list([{"input_ids": e.input_ids,
                                  "completion_mask": [0] * e.prompt_len + [1] * (len(e) - e.prompt_len)}
                                 for e in examples])
    mean_length = statistics.fmean(len(e) for e in examples)
    out = tempfile.mkdtemp(prefix="bench-sft-trl-")
    common = dict(output_dir=out, max_steps=args.steps + 1, learning_rate=LR, warmup_steps=WARMUP,
                  lr_scheduler_type="cosine", max_grad_norm=1.0, weight_decay=0.0, gradient_accumulation_steps=1,
                  completion_only_loss=True, logging_steps=1, report_to=[], save_strategy="no", seed=0,
                  disable_tqdm=True, use_cpu=True, bf16=False, dataloader_num_workers=0)
    if packed:
        config = SFTConfig(**common, packing=True, packing_strategy="bfd", max_length=args.batch_tokens,
                           per_device_train_batch_size=1)
    else:
        config = SFTConfig(**common, max_length=max_length,
                           per_device_train_batch_size=max(1, round(args.batch_tokens / mean_length)))
    ends, tokens, losses, pending = [], [], [], [0]

    class Counting(SFTTrainer):
        def compute_loss(self, model, inputs, *a, **k):  # real tokens: the attention mask, or the packed row
            mask = inputs.get("attention_mask")
            pending[0] += int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
            return super().compute_loss(model, inputs, *a, **k)

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            ends.append(clock())
            tokens.append(pending[0])
            pending[0] = 0

        def on_log(self, _args, _state, _control, logs=None, **k):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    trainer = Counting(model=network, args=config, train_dataset=dataset, processing_class=tokenizer)
    trainer.add_callback(Clock())
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.train()
    shutil.rmtree(out, ignore_errors=True)
    return summarise("trl-packed" if packed else "trl", ends, tokens, losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="stories260K,smollm2", help="comma-separated: stories260K, smollm2")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (one more runs as warm-up)")
    parser.add_argument("--batch-tokens", type=int, default=None, help="tokens per optimizer step")
    parser.add_argument("--rows", type=int, default=None, help="GSM8K rows to tokenise")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for every trainer")
    parser.add_argument("--repeats", type=int, default=2, help="alternate the trainers this many times")
    parser.add_argument("--trl-modes", default="trl,trl-packed", help="which TRL runs: trl, trl-packed")
    parser.add_argument("--curate-padded", action="store_true",
                        help="also run curate with packing off (length-sorted padded batches)")
    args = parser.parse_args()
    quiet_setup(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="bench-sft-models-"))
    modes = [m.strip() for m in args.trl_modes.split(",") if m.strip()]
    try:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            defaults = DEFAULTS[name]
            run_args = argparse.Namespace(**{**vars(args), **{k: getattr(args, k) or v for k, v in defaults.items()}})
            model = model_folder(name, scratch)
            rows = gsm8k_rows(run_args.rows)
            examples, max_length = encoded(model, rows)
            setting = {"model": name, "threads": args.threads, "batch_tokens": run_args.batch_tokens,
                       "rows": len(examples), "mean_row_tokens": round(statistics.fmean(len(e) for e in examples), 1),
                       "response_share": round(sum(len(e.response_ids) for e in examples)
                                               / sum(len(e) for e in examples), 3)}
            runners = {"curate": lambda: run_curate(model, rows, run_args),
                       "curate-padded": lambda: run_curate(model, rows, run_args, packing=False),
                       "trl": lambda: run_trl(model, examples, max_length, run_args, packed=False),
                       "trl-packed": lambda: run_trl(model, examples, max_length, run_args, packed=True)}
            order = ["curate", *(["curate-padded"] if args.curate_padded else []), *modes]
            results: dict[str, list[dict]] = {label: [] for label in order}
            for repeat in range(args.repeats):
                for label in order if repeat % 2 == 0 else order[::-1]:
                    result = runners[label]()
                    results[label].append(result)
                    print(json.dumps({**setting, "repeat": repeat, **result}), flush=True)
            line = {**setting, "repeats": args.repeats}
            for unit in ("tokens_per_s", "tokens_per_cpu_s"):
                line[f"curate_{unit}"] = round(statistics.fmean(r[unit] for r in results["curate"]), 1)
            for label in order[1:]:
                for unit, tag in (("tokens_per_s", ""), ("tokens_per_cpu_s", "_cpu")):
                    ours = statistics.fmean(r[unit] for r in results["curate"])
                    theirs = statistics.fmean(r[unit] for r in results[label])
                    line[f"{label}_{unit}"] = round(theirs, 1)
                    line[f"ratio{tag}_vs_{label}"] = round(ours / theirs, 2)
                    line[f"ratio{tag}_vs_{label}_per_repeat"] = [
                        round(c[unit] / t[unit], 2) for c, t in zip(results["curate"], results[label])]
            print(json.dumps(line), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
