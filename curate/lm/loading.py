"""Load a causal LM and its tokenizer from a hub id or a local `save_pretrained` folder."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import xxhash

from curate.errors import ModelLoadError
from curate.lm import gguf_cache

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
                   "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt", "generation_config.json")
# What a curate training run writes before its final model (curate.train.checkpoints; lm cannot import train).
RUN_CHECKPOINTS = ("checkpoint", ".checkpoint-previous")


@dataclass
class LM:
    """A loaded model with what callers need to cache results against it."""

    model: Any  # transformers PreTrainedModel
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    name: str
    model_hash: str
    device: torch.device

    @property
    def max_length(self) -> int:
        limit = getattr(self.model.config, "max_position_embeddings", None) or 4096
        return int(min(limit, 1 << 20))


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise ModelLoadError(f"unknown dtype {dtype!r}", hint="use auto, float32, bfloat16 or float16") from None


def fingerprint(path: Path) -> str:
    """A cheap, stable identity for a model folder: its config and tokenizer files, plus the size, first
    and last MiB of each weight file (the whole file when it is under 2 MiB). A GGUF file, and the folder
    curate dequantised it into, have the file's size, first and last MiB (`curate.lm.gguf_cache`)."""
    if path.is_file() and gguf_cache.is_gguf(path):
        return gguf_cache.file_fingerprint(path)
    converted = gguf_cache.source_fingerprint(path)
    if converted:
        return converted
    hasher = xxhash.xxh3_128()
    for name in ("config.json", *TOKENIZER_FILES):
        file = path / name
        if file.exists():
            hasher.update(name.encode() + b"\0" + file.read_bytes())
    for file in sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES):
        size = file.stat().st_size
        hasher.update(f"{file.name}:{size}".encode())
        with open(file, "rb") as fh:
            hasher.update(fh.read(1 << 20))
            if size > 1 << 20:
                fh.seek(max(1 << 20, size - (1 << 20)))
                hasher.update(fh.read())
    return hasher.hexdigest()


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name.strip("/") and name.count("/") > 1


def load(model: str, dtype: str = "auto", device: str = "auto", trust_remote_code: bool = False,
         cache_dir: str | os.PathLike | None = None) -> LM:
    """Load `model` (hub id, folder or `.gguf` file) for inference, in eval mode, on `device`.

    A GGUF file is dequantised once into a folder under `cache_dir` and opened from there on later
    loads; without a `cache_dir` it is dequantised on every load."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model).expanduser()
    if gguf_cache.is_gguf(model):
        if cache_dir is None:
            return _load_gguf_uncached(model, path, dtype, device, trust_remote_code)
        path, _ = gguf_cache.cached_folder(path, Path(cache_dir), trust_remote_code)
    local = path.exists()
    if not local and _looks_like_path(model):
        raise ModelLoadError(f"model folder {model} does not exist",
                             hint="pass a folder made by save_pretrained, a hub id, or --model proxy")
    if local and not path.is_dir():
        raise ModelLoadError(f"{model} is a file, not a model folder",
                             hint="pass the folder that holds config.json and the weights")
    if local and not (path / "config.json").exists():
        _refuse_run_folder(model, path)
    target = device_obj = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device_obj)
    source = str(path) if local else model
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        network = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ... for bad folders
        reason = " ".join(str(exc).split()) or type(exc).__name__
        reason = reason if len(reason) <= 600 else reason[:600] + "…"
        hint = ("a model folder needs config.json, the weights and tokenizer files (save_pretrained writes them)"
                if local else "check the id; offline, pass a local folder or use --model proxy")
        if local and not (path / "config.json").exists():
            contents = sorted(p.name for p in path.iterdir())[:8]
            reason = "it has no config.json, so it is not a model folder (" + \
                (f"it holds: {', '.join(contents)})" if contents else "it is empty)")
        raise ModelLoadError(f"could not load model {model}: {reason}", hint=hint) from exc
    network.to(target).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if local:
        model_hash = fingerprint(path)
    else:
        commit = getattr(network.config, "_commit_hash", None)
        model_hash = xxhash.xxh3_128_hexdigest(f"{model}@{commit}".encode())
    return LM(network, tokenizer, model, model_hash, device_obj)


def _load_gguf_uncached(model: str, path: Path, dtype: str, device: str, trust_remote_code: bool) -> LM:
    device_obj = resolve_device(device)
    tokenizer, network = gguf_cache.read(path, resolve_dtype(dtype, device_obj), trust_remote_code)
    network.to(device_obj).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return LM(network, tokenizer, model, gguf_cache.file_fingerprint(path), device_obj)


def _refuse_run_folder(model: str, path: Path) -> None:
    """A folder without config.json that a curate training run wrote: say it has not finished."""
    for name in RUN_CHECKPOINTS:
        state = _run_state(path / name)
        if state is not None:
            step, config = state.get("step"), state.get("config") or {}
            kind = "grpo" if "num_generations" in config else "sft"
            total = f" of {config['steps']}" if config.get("steps") else ""
            raise ModelLoadError(
                f"{model} is the folder of an unfinished training run (checkpoint at step {step}{total}); "
                "the model is written there when the run ends",
                hint=f"finish it: rerun the same `curate train {kind} DATA --model BASE --out {model} --resume`; "
                     "or pass a finished run's folder (one with config.json)")
    state = _run_state(path)
    if state is not None:
        raise ModelLoadError(
            f"{model} is a training checkpoint (step {state.get('step')}), not a model folder",
            hint=f"resume the run in {path.parent} with --out {path.parent} --resume to write the model there")


def _run_state(folder: Path) -> dict | None:
    """A checkpoint's state.json (step, config), or None."""
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "step" in state else None


def describe(lm: LM) -> dict[str, Any]:
    config = lm.model.config
    return {"model": lm.name, "hash": lm.model_hash, "type": getattr(config, "model_type", None),
            "params": sum(p.numel() for p in lm.model.parameters()), "device": str(lm.device),
            "dtype": str(next(lm.model.parameters()).dtype).replace("torch.", ""),
            "config": json.loads(config.to_json_string())}
