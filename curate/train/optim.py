"""The optimiser side of training: the model made trainable (optionally with LoRA), AdamW, the LR schedule.

- AdamW (Loshchilov & Hutter 2019) with decoupled weight decay on matrices only
  (norms, biases and embeddings-as-vectors are not decayed), as nanoGPT does.
- Learning rate: linear warmup over `warmup` steps, then cosine (or linear) decay to
  `min_lr_ratio * lr` at the last step, or constant.
- LoRA (Hu et al. 2022) through peft: adapters on every linear layer but the LM head
  by default; the frozen base weights stay in the model's dtype.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from curate.errors import BadUsage

SCHEDULES = ("cosine", "linear", "constant")
FUSED_DEVICES = ("cuda", "cpu")  # where torch.optim.AdamW(fused=True) has a kernel


def lr_at(step: int, total: int, lr: float, warmup: int = 0, min_lr_ratio: float = 0.0,
          schedule: str = "cosine") -> float:
    """Learning rate for optimizer step `step` (0-based) of `total`."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    span = max(1, total - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    if schedule == "linear":
        factor = 1.0 - progress
    elif schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise BadUsage(f"unknown lr schedule {schedule!r}", hint="schedules: " + ", ".join(SCHEDULES))
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * factor)


def add_lora(model: Any, r: int, alpha: int, dropout: float = 0.0, targets: str = "all-linear") -> Any:
    """Wrap `model` with fresh LoRA adapters (peft)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise BadUsage("--lora needs the peft package",
                       hint="pip install 'curate[train]' (or pip install peft)") from exc
    modules: Any = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=modules, bias="none",
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def trainable(model: Any) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def adamw(model: Any, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
          eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; weight decay on 2-D (and larger) ones only."""
    params = trainable(model)
    if not params:
        raise BadUsage("the model has no trainable parameters", hint="check --lora targets")
    decay = [p for _, p in params if p.ndim >= 2]
    no_decay = [p for _, p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel (one pass over each tensor) is also torch's fastest on CPU; TRL's default optimizer too.
    fused = all(p.device.type in FUSED_DEVICES for _, p in params)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=eps,
                             fused=fused or None)


def set_lr(optimizer: torch.optim.Optimizer, value: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = value


def check_lr_settings(lr: float, warmup: int, min_lr_ratio: float, schedule: str) -> None:
    if lr <= 0 or not math.isfinite(lr):
        raise BadUsage(f"lr must be a positive number, got {lr}", hint="e.g. --lr 1e-5")
    if warmup < 0:
        raise BadUsage(f"warmup must be >= 0, got {warmup}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise BadUsage(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    if schedule not in SCHEDULES:
        raise BadUsage(f"unknown lr schedule {schedule!r}", hint="schedules: " + ", ".join(SCHEDULES))
