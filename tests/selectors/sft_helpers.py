"""Helpers for the SFT-selector tests (not a test module): small pools, tiny models, a cached proxy."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace


def word_problems(n: int, seed: int = 0) -> list[dict]:
    """GSM8K-shaped rows with varied lengths and vocabulary."""
    rng = random.Random(seed)
    names = ["Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana"]
    things = ["apples", "books", "coins", "stamps", "shells", "cards"]
    rows = []
    for i in range(n):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        name, thing = rng.choice(names), rng.choice(things)
        steps = rng.randint(1, 4)
        work = "\n".join(f"Step {s + 1}: {a} + {b * (s + 1)} = {a + b * (s + 1)}" for s in range(steps))
        rows.append({"question": f"{name} has {a} {thing} and finds {b} more, {steps} times. How many now? ({i})",
                     "answer": f"{work}\n#### {a + b * steps}"})
    return rows


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ingest_rows(ws: Workspace, folder: Path, rows: list[dict], name: str = "pool") -> DatasetVersion:
    path = write_rows(folder / f"{name}.jsonl", rows)
    return ingest(ws, str(path), IngestOptions(name=name)).version


def save_tiny(folder: Path, seed: int = 0, hidden: int = 32) -> Path:
    """A random 2-layer Llama with the byte tokenizer (built here, never downloaded)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from curate.lm import byte_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=byte_tokenizer.VOCAB_SIZE, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    byte_tokenizer.save(folder)
    return folder


def install_proxy(ws: Workspace, version: DatasetVersion, model_dir: Path) -> Path:
    """Put `model_dir` where `--model proxy` looks for the dataset's cached proxy, so tests skip training it."""
    from curate.train.proxy import ProxyConfig, proxy_folder

    folder = proxy_folder(ws, version, ProxyConfig())
    shutil.copytree(model_dir, folder, dirs_exist_ok=True)
    (folder / "proxy.json").write_text(json.dumps({"examples": 0, "tokens": 0, "steps": 0, "first_loss": 0.0,
                                                   "final_loss": 0.0, "seconds": 0.0}))
    return folder
