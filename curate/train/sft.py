"""Supervised fine-tuning, readable top to bottom (in the spirit of nanoGPT's train.py).

    load model -> tokenise the dataset -> pack examples into rows of at most batch_tokens tokens
    -> for each step: grad_accum micro-batches (rows), loss on response tokens only -> AdamW
    -> checkpoint every save_every steps -> Hugging Face model folder in OUT

- The loss covers response tokens only, and of those only the ones the row's `token_mask`
  keeps (Token Cleaning, Pang et al. ICML 2025). It is the mean over every kept token of
  the step (all micro-batches together), so gradient accumulation does not reweight
  short and long micro-batches.
- `loss="nll"` is cross-entropy; `loss="dft"` is Dynamic Fine-Tuning (Wu et al. 2025,
  arXiv 2508.05629): each token's loss is scaled by its detached probability
  (`curate.train.losses`).
- Packing (default): each micro-batch is one row of several whole examples (best-fit
  decreasing, `curate.lm.batching.pack_bins`), position ids restarting per example and
  block-diagonal causal attention (`curate.train.packing`): no padding, and no example sees
  another. The LM head runs only where the loss is taken, fused with the loss
  (`curate.train.head_loss`: each slice of logits computed once, never a full logits tensor). `packing=False`, or a model whose
  attention cannot be packed exactly, uses length-sorted right-padded batches instead.
- AdamW, linear warmup then cosine decay, gradient clipping; bf16 weights on a GPU that
  supports them (`dtype="auto"`), float32 on CPU; LoRA through peft with `lora=True`.
- `OUT/checkpoint/` (model, optimizer, step, config) every `save_every` steps and at the
  end; `resume=True` continues from it exactly: step s always sees the same micro-batches.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curate.catalog.versions import DatasetVersion
from curate.errors import BadUsage
from curate.lm.loading import load
from curate.lm.templates import TEMPLATES
from curate.train.checkpoints import check_out_dir, restore, save_checkpoint, save_model_folder
from curate.train.data import SFTExample, describe, encode_sft, micro_batches, packed_micro_batches, stream_slice
from curate.train.head_loss import sft_head_loss
from curate.train.logprobs import response_states
from curate.train.losses import SFT_LOSSES
from curate.train.metrics import MetricsLogger
from curate.train.optim import add_lora, adamw, check_lr_settings, lr_at, set_lr
from curate.train.packing import packed_attention, packed_response_states, supports_packing
from curate.train.provenance import write_training_record


@dataclass
class SFTConfig:
    steps: int = 200  # optimizer steps
    lr: float = 2e-5
    batch_tokens: int = 8192  # tokens per micro-batch (one packed row; padded tokens without packing)
    grad_accum: int = 1  # micro-batches per optimizer step
    warmup: int = 10  # linear warmup steps, then cosine decay
    min_lr_ratio: float = 0.0  # the cosine ends at lr * min_lr_ratio
    lr_schedule: str = "cosine"  # cosine | linear | constant
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    packing: bool = True  # several examples per row, block-diagonal attention; False: padded batches
    loss: str = "nll"  # nll | dft
    max_length: int | None = None  # prompt + response tokens; None: the model's context
    template: str = "auto"  # auto | chat | plain (curate.lm.templates)
    seed: int = 0
    save_every: int = 100  # checkpoint every N steps (0: only at the end)
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: str = "all-linear"  # or comma-separated module names, e.g. q_proj,v_proj
    dtype: str = "auto"  # auto (bf16 on a capable GPU, else float32) | float32 | bfloat16 | float16
    device: str = "auto"

    def check(self) -> None:
        """Raise BadUsage naming the first bad field and how to fix it."""
        for name in ("steps", "batch_tokens", "grad_accum"):
            if getattr(self, name) < 1:
                raise BadUsage(f"{name} must be >= 1, got {getattr(self, name)}",
                               hint=f"e.g. --{name.replace('_', '-')} 1")
        if self.loss not in SFT_LOSSES:
            raise BadUsage(f"unknown loss {self.loss!r}", hint="--loss nll or --loss dft")
        if self.template not in TEMPLATES:
            raise BadUsage(f"unknown template {self.template!r}", hint="templates: " + ", ".join(TEMPLATES))
        if self.max_length is not None and self.max_length < 2:
            raise BadUsage(f"max_length must be >= 2, got {self.max_length}")
        if self.save_every < 0 or self.grad_clip < 0:
            raise BadUsage("save_every and grad_clip must be >= 0")
        if self.lora and (self.lora_r < 1 or self.lora_alpha <= 0):
            raise BadUsage(f"lora_r must be >= 1 and lora_alpha > 0, got {self.lora_r} and {self.lora_alpha}")
        check_lr_settings(self.lr, self.warmup, self.min_lr_ratio, self.lr_schedule)


# Fields a resumed run must share with the checkpoint: they decide the data order and the model.
RESUME_FIXED = ("batch_tokens", "grad_accum", "packing", "loss", "max_length", "template", "seed", "lora", "lora_r",
                "lora_alpha", "lora_targets", "dtype")


def _check_resume(config: SFTConfig, saved: dict) -> None:
    saved = {"packing": False, **saved}  # checkpoints from before packing existed used padded batches
    changed = [k for k in RESUME_FIXED if k in saved and saved[k] != getattr(config, k)]
    if changed:
        raise BadUsage("--resume with different settings: " + ", ".join(f"{k} {saved[k]!r} -> {getattr(config, k)!r}"
                                                                         for k in changed),
                       hint="resume with the checkpoint's settings (OUT/checkpoint/state.json), or start a new --out")


def _step_loss(network: Any, batch: list[SFTExample], kind: str, n_tokens: int, pad_id: int,
               device: torch.device, packed: bool = True) -> tuple[torch.Tensor, float]:
    """This micro-batch's share of the step loss, and its summed NLL over kept tokens (for logging)."""
    items = [(e.prompt_ids, e.response_ids) for e in batch]
    states, targets = (packed_response_states(network, items, device) if packed
                       else response_states(network, items, pad_id, device))
    weights = torch.tensor([w for e in batch for w in e.weights], dtype=torch.float32, device=device)
    if not bool((weights > 0).all()):  # tokens a token mask drops need no logits at all
        kept = (weights > 0).nonzero().squeeze(1)
        states, targets, weights = states[kept], targets[kept], weights[kept]
    loss, logps = sft_head_loss(network, states, targets, weights, kind, n_tokens)
    return loss, float(-(logps * weights).sum())


def train_sft(
    model: str,
    data: DatasetVersion | list[dict],
    out_dir: Path,
    config: SFTConfig,
    resume: bool = False,
    progress: Callable[[int, dict], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune `model` on `data`; save the model folder to `out_dir`; return run statistics."""
    start_time = time.perf_counter()
    config.check()
    out_dir = Path(out_dir)
    checkpoint = check_out_dir(out_dir, resume)
    if checkpoint is not None:
        _check_resume(config, checkpoint.config)
    torch.manual_seed(config.seed)

    # The model, the data, the micro-batches.
    lm = load(model, dtype=config.dtype, device=config.device)
    tokenizer, device = lm.tokenizer, lm.device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    examples, counts = encode_sft(data, tokenizer, config.template, config.max_length or lm.max_length)
    network = add_lora(lm.model, config.lora_r, config.lora_alpha, config.lora_dropout,
                       config.lora_targets) if config.lora else lm.model
    packed = config.packing and supports_packing(network)
    batches = (packed_micro_batches(examples, config.batch_tokens, config.seed) if packed
               else micro_batches(examples, config.batch_tokens))
    network.train()
    optimizer = adamw(network, config.lr, config.weight_decay)

    start, tokens_seen = 0, 0
    if checkpoint is not None:
        restore(checkpoint, network, optimizer)
        start, tokens_seen = checkpoint.step, int(checkpoint.state.get("tokens", 0))
    logger = MetricsLogger(out_dir, resume_step=start if checkpoint else None)
    run_config = asdict(config)
    losses: list[float] = []

    # Packed rows run through the per-example attention for the whole loop (the model is restored after).
    with packed_attention(network) if packed else contextlib.nullcontext():
        for step in range(start, config.steps):
            t0 = time.perf_counter()
            lr = lr_at(step, config.steps, config.lr, config.warmup, config.min_lr_ratio, config.lr_schedule)
            set_lr(optimizer, lr)
            chosen = [[examples[i] for i in batches[b]]
                      for b in stream_slice(len(batches), config.seed, step * config.grad_accum, config.grad_accum)]
            n_tokens = int(sum(sum(e.weights) for batch in chosen for e in batch))
            loss_total, nll_total = 0.0, 0.0
            for batch in chosen:  # gradient accumulation: each micro-batch adds its share of the step mean
                loss, nll = _step_loss(network, batch, config.loss, n_tokens, pad_id, device, packed)
                loss.backward()
                loss_total, nll_total = loss_total + loss.item(), nll_total + nll
            grad_norm = torch.nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip or float("inf"))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            seconds = time.perf_counter() - t0
            input_tokens = sum(len(e) for batch in chosen for e in batch)  # real tokens run, prompts included
            padded = input_tokens if packed else sum(len(batch) * max(len(e) for e in batch) for batch in chosen)
            tokens_seen += n_tokens
            losses.append(loss_total)
            metrics = {"loss": loss_total, "nll": nll_total / max(1, n_tokens), "learning_rate": lr,
                       "grad_norm": float(grad_norm), "num_tokens": tokens_seen, "step_tokens": n_tokens,
                       "input_tokens": input_tokens, "padding": 1.0 - input_tokens / max(1, padded),
                       "tokens_per_second": n_tokens / max(seconds, 1e-9), "step_time": seconds}
            logger.log(step + 1, metrics)
            if progress is not None:
                progress(step + 1, metrics)
            if config.save_every and (step + 1) % config.save_every == 0 and step + 1 < config.steps:
                save_checkpoint(out_dir, network, optimizer, step + 1, run_config, {"tokens": tokens_seen})

    save_checkpoint(out_dir, network, optimizer, config.steps, run_config, {"tokens": tokens_seen})
    save_model_folder(network, tokenizer, out_dir)
    write_training_record(out_dir, "sft", model, data)
    logger.close()
    tail = losses[-max(1, len(losses) // 10):] if losses else [float("nan")]
    return {"model": model, "data": describe(data), "out_dir": str(out_dir), "steps": config.steps,
            "resumed_from": start if checkpoint else None, "first_loss": losses[0] if losses else None,
            "final_loss": float(np.mean(tail)), "tokens": tokens_seen, "examples": len(examples),
            "micro_batches": len(batches), "packing": packed, "skipped_no_response": counts["no_response"],
            "truncated": counts["truncated"], "masked_tokens": counts["masked_tokens"],
            "seconds": round(time.perf_counter() - start_time, 2)}
