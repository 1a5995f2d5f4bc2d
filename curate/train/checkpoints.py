"""Checkpoints (nanoGPT style: model, optimizer, step and config in one place) and the final model folder.

`OUT/checkpoint/` holds `model.pt` (the trainable weights: all of them, or only the LoRA
adapters), `optimizer.pt`, and `state.json` (step, the run's config, the trainer's own
state such as the run name, and the torch RNG state in `rng.pt`). It is written to a
temporary folder and swapped in with renames, so a crash leaves the previous checkpoint
or the new one, never a torn one. The final model is an ordinary Hugging Face folder
(`save_pretrained` model and tokenizer; LoRA adapters merged in) that `curate.lm.load`,
transformers and vLLM open; the adapters alone are kept in `OUT/adapter/`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from curate.errors import BadUsage
from curate.train.distributed import Dist, barrier
from curate.train.optim import trainable

CHECKPOINT = "checkpoint"
PREVIOUS = ".checkpoint-previous"


@dataclass
class Checkpoint:
    folder: Path
    step: int
    config: dict[str, Any]
    state: dict[str, Any]


def _weights(model: Any) -> dict[str, torch.Tensor]:
    """The trainable weights by name (every weight for full fine-tuning, the adapters for LoRA)."""
    return {name: p.detach().cpu() for name, p in trainable(model)}


def save_checkpoint(out_dir: Path, model: Any, optimizer: torch.optim.Optimizer, step: int,
                    config: dict[str, Any], state: dict[str, Any] | None = None) -> Path:
    """Write `OUT/checkpoint/` atomically and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".checkpoint-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        torch.save(_weights(model), staging / "model.pt")
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, staging / "rng.pt")
        write_state_and_swap_in(staging, out_dir, step, config, state or {})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / CHECKPOINT


def save_on_main(dist: Dist, out_dir: Path, model: Any, optimizer: torch.optim.Optimizer, step: int,
                 config: dict[str, Any], state: dict[str, Any]) -> None:
    """Rank 0 writes the checkpoint (data-parallel ranks hold the same weights and optimizer state);
    the others wait until it is in place."""
    if dist.main:
        save_checkpoint(out_dir, model, optimizer, step, config, state)
    barrier(dist)


def write_state_and_swap_in(staging: Path, out_dir: Path, step: int, config: dict[str, Any],
                            state: dict[str, Any]) -> None:
    """Finish a staged checkpoint with its `state.json` and rename it into place as `OUT/checkpoint/`."""
    (staging / "state.json").write_text(json.dumps({"step": step, "config": config, "state": state},
                                                   indent=2, default=str))
    final, previous = out_dir / CHECKPOINT, out_dir / PREVIOUS
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        os.rename(final, previous)
    os.rename(staging, final)
    shutil.rmtree(previous, ignore_errors=True)


def load_checkpoint(out_dir: Path) -> Checkpoint | None:
    """The latest checkpoint in `out_dir`, or None; a swap cut short falls back to the previous one."""
    for name in (CHECKPOINT, PREVIOUS):
        folder = out_dir / name
        if (folder / "state.json").exists() and ((folder / "model.pt").exists() or (folder / "dcp").is_dir()):
            info = json.loads((folder / "state.json").read_text())
            return Checkpoint(folder, int(info["step"]), info["config"], info.get("state", {}))
    return None


def restore(checkpoint: Checkpoint, model: Any, optimizer: torch.optim.Optimizer) -> None:
    """Load the checkpoint's weights, optimizer state and RNG state into a freshly built model and optimizer."""
    weights = torch.load(checkpoint.folder / "model.pt", map_location="cpu", weights_only=True)
    params = dict(trainable(model))
    missing = set(params) - set(weights)
    unexpected = set(weights) - set(params)
    if missing or unexpected:
        raise BadUsage(f"checkpoint {checkpoint.folder} does not fit this model "
                       f"({len(missing)} weights missing, {len(unexpected)} unexpected)",
                       hint="resume with the same --model and --lora settings, or start a new --out folder")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
    optimizer.load_state_dict(torch.load(checkpoint.folder / "optimizer.pt", map_location="cpu", weights_only=True))
    rng = torch.load(checkpoint.folder / "rng.pt", map_location="cpu", weights_only=True)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def check_out_dir(out_dir: Path, resume: bool) -> Checkpoint | None:
    """The checkpoint to resume from; refuses to start over a run that has one unless resuming."""
    checkpoint = load_checkpoint(out_dir)
    if resume and checkpoint is None:
        raise BadUsage(f"--resume: {out_dir} holds no checkpoint",
                       hint="start without --resume, or point --out at the folder of the run to continue")
    if not resume and checkpoint is not None:
        raise BadUsage(f"{out_dir} already holds a run (checkpoint at step {checkpoint.step})",
                       hint="pass --resume to continue it, or choose another --out folder")
    return checkpoint


def save_model_folder(model: Any, tokenizer: Any, out_dir: Path, state_dict: dict | None = None) -> None:
    """The trained model as a Hugging Face folder; LoRA adapters are merged (and kept in OUT/adapter/).

    `state_dict` gives the weights when the model holds only a shard of them (FSDP)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):  # a peft model
        model.save_pretrained(str(out_dir / "adapter"))
        model = model.merge_and_unload()
    model.eval()
    model.save_pretrained(str(out_dir), **({"state_dict": state_dict} if state_dict is not None else {}))
    tokenizer.save_pretrained(str(out_dir))
