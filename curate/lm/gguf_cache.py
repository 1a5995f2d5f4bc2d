"""GGUF files (llama.cpp's format) as ordinary Hugging Face model folders, dequantised once and cached.

transformers reads a `.gguf` file through the `gguf` package and dequantises every tensor to
float on each load (seconds for a 135M model, minutes for a 7B one); the model it returns refuses
`save_pretrained`. So a file is dequantised once: its state dict goes into a fresh model built
from the same config, saved in float32 (a 4-bit block's scale x code + offset is not exact in
bf16 or fp16) with the tokenizer under a cache folder the caller chooses (curate passes the
workspace's `models/`), named by the file's fingerprint. Later loads open that folder.

Identity: the folder's `gguf.json` records the source file and its fingerprint (size, first and
last MiB), and `curate.lm.loading.fingerprint` returns that fingerprint for the folder, so
cached scores and the prompt ledger see one model whether it is opened from the file or from
the cache.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import xxhash

from curate.errors import ModelLoadError

MARKER = "gguf.json"
MIB = 1 << 20


def is_gguf(model: str | os.PathLike) -> bool:
    """Whether `model` names a GGUF file (by its suffix; it may not exist)."""
    return str(model).lower().endswith(".gguf")


def file_fingerprint(path: Path) -> str:
    """xxh3-128 of the file's size and its first and last MiB: cheap, stable under renames and copies."""
    hasher = xxhash.xxh3_128()
    size = path.stat().st_size
    hasher.update(f"gguf:{size}".encode())
    with open(path, "rb") as fh:
        hasher.update(fh.read(MIB))
        if size > MIB:
            fh.seek(max(MIB, size - MIB))
            hasher.update(fh.read())
    return hasher.hexdigest()


def source_fingerprint(folder: Path) -> str | None:
    """The fingerprint of the GGUF file `folder` was converted from (None for any other folder)."""
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        return str(json.loads(marker.read_text())["fingerprint"])
    except (ValueError, KeyError, TypeError):
        return None


def require_gguf_package(path: Path) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError(f"reading {path} needs the gguf package, which is not installed",
                             hint="pip install gguf (a dependency of curate: reinstall curate to get it)")


def check_file(path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(f"GGUF file {path} does not exist" if not path.exists() else f"{path} is not a file",
                             hint="pass the path of a .gguf file, a model folder or a hub id")


def read(path: Path, dtype: Any, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """(tokenizer, model) straight from the file, dequantised to `dtype`: an ordinary model that trains and
    saves like any other (no cache)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_file(path)
    require_gguf_package(path)
    folder, name = str(path.parent), path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, trust_remote_code=trust_remote_code)
        network = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype,
                                                       trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises ValueError, KeyError, RuntimeError ... for unsupported files
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"could not load GGUF file {path}: {reason}",
                             hint="transformers reads GGUF files of the architectures and quantisation types it "
                                  "lists under 'GGUF' in its docs; convert others with llama.cpp's tools") from exc
    return tokenizer, _plain_copy(network, dtype)


def _plain_copy(network: Any, dtype: Any) -> Any:
    """The GGUF-loaded model's weights in a fresh model of the same config, which save_pretrained accepts."""
    from transformers import AutoModelForCausalLM

    config = network.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    fresh = AutoModelForCausalLM.from_config(config, dtype=dtype)
    fresh.load_state_dict(network.state_dict(), strict=True)
    fresh.generation_config = network.generation_config
    return fresh


def convert(path: Path, folder: Path, trust_remote_code: bool = False) -> None:
    """Dequantise `path` into `folder` (model, tokenizer, then the `gguf.json` marker last)."""
    import torch

    began = time.perf_counter()
    tokenizer, network = read(path, torch.float32, trust_remote_code)
    folder.mkdir(parents=True, exist_ok=True)
    network.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    import transformers

    (folder / MARKER).write_text(json.dumps({
        "source": str(path.resolve()), "fingerprint": file_fingerprint(path), "bytes": path.stat().st_size,
        "dtype": "float32", "transformers": transformers.__version__,
        "seconds": round(time.perf_counter() - began, 2)}, indent=2) + "\n")


def cached_folder(path: Path, cache_dir: Path, trust_remote_code: bool = False) -> tuple[Path, bool]:
    """The Hugging Face folder for GGUF file `path` under `cache_dir`, and whether this call converted it.

    Conversion writes into a private staging folder and renames it into place, so a crash leaves no
    half folder and two processes converting the same file keep one copy."""
    path = Path(path).expanduser()
    check_file(path)
    key = file_fingerprint(path)
    folder = Path(cache_dir) / f"gguf-{key[:16]}"
    if source_fingerprint(folder) == key:
        return folder, False
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(cache_dir) / f".{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        convert(path, staging, trust_remote_code)
        if folder.exists() and source_fingerprint(folder) != key:  # an unmarked leftover: replace it
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(staging, folder)
        except OSError:  # another process put the same conversion there first
            if source_fingerprint(folder) != key:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, True
