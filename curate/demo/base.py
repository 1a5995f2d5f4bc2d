"""The demo's base model: a small Llama warmed up on synthetic problems the pool never holds.

Every arm of the demo's ablation fine-tunes one base. It must not have seen the pool: a
model that has fit the pool, its corrupted rows included, blurs what a selection changes
(`curate compare` refuses one). So the base starts from random weights (the proxy's
architecture) and is trained with the SFT trainer on `demo-warmup`, clean problems made
with another seed, none of whose questions is in the pool or the held-out set. That warm-up
stands in for pretraining: it teaches the format, copying numbers from the question and
some arithmetic; the SFT of each arm then continues from there. `--base` replaces it with
any model folder.

Its tokenizer is a byte-level BPE trained on the warm-up text (HF `tokenizers`; the byte
alphabet means no text is out of vocabulary), not the proxy's one-token-per-byte: with
numbers and words as single tokens a problem is ~32 tokens instead of ~110 bytes, and a
model this small learns the task in a few hundred steps instead of thousands (measured in
docs/decisions.md, "The demo"). Token-clean masks are tied to a tokenizer, so a token-clean
arm needs this base as its scorer (`--scorer-model`).

The base is cached in the workspace under the warm-up set's content hash and its config,
and its `training.json` names `demo-warmup`, so compare can check it against the pool.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import xxhash

from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace
from curate.train.proxy import ProxyConfig

RECORD = "base.json"


@dataclass(frozen=True)
class BaseConfig:
    problems: int = 6000  # warm-up problems
    steps: int = 250  # SFT steps on them, from random weights
    lr: float = 3e-3
    batch_tokens: int = 2048
    warmup: int = 20
    min_lr_ratio: float = 0.1
    vocab_size: int = 1024  # at most; BPE stops when no pair repeats
    seed: int = 0

    def key(self) -> str:
        return xxhash.xxh3_64_hexdigest(json.dumps(asdict(self), sort_keys=True).encode())


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on `texts`, with the byte tokenizer's special tokens and ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from curate.lm import byte_tokenizer

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(byte_tokenizer.SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(texts, trainer)
    core.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                        special_tokens=[("<s>", byte_tokenizer.BOS)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=1 << 30, split_special_tokens=True)


def base_folder(ws: Workspace, warmup: DatasetVersion, config: BaseConfig) -> Path:
    return ws.models_dir / f"demo-base-{warmup.content_hash[:16]}-{config.key()[:8]}"


def ensure_base(
    ws: Workspace,
    warmup: DatasetVersion,
    config: BaseConfig,
    progress: Callable[[int, dict], None] | None = None,
) -> tuple[Path, dict]:
    """The base warmed up on `warmup`: from the cache, or trained now. Returns (folder, stats)."""
    from curate.train.data import SFT_COLUMNS, iter_rows
    from curate.train.proxy import build_model, example_text
    from curate.train.sft import SFTConfig, train_sft

    folder = base_folder(ws, warmup, config)
    if (folder / RECORD).exists():
        return folder, {**json.loads((folder / RECORD).read_text()), "cached": True}
    start = time.perf_counter()
    with ws.staging("demo-base") as staging:
        init = staging / "init"
        texts = [example_text(r["prompt"], r.get("response")) for r in iter_rows(warmup, SFT_COLUMNS)]
        tokenizer = train_tokenizer(texts, config.vocab_size)
        build_model(ProxyConfig(seed=config.seed), vocab_size=len(tokenizer)).save_pretrained(str(init))
        tokenizer.save_pretrained(str(init))
        sft = SFTConfig(steps=config.steps, lr=config.lr, batch_tokens=config.batch_tokens, warmup=config.warmup,
                        min_lr_ratio=config.min_lr_ratio, seed=config.seed, save_every=0)
        stats = train_sft(str(init), warmup, staging / "model", sft, progress=progress)
        shutil.rmtree(staging / "model" / "checkpoint", ignore_errors=True)
        record = {"warmup": warmup.ref, "content_hash": warmup.content_hash, "config": asdict(config),
                  "first_loss": stats["first_loss"], "final_loss": stats["final_loss"], "tokens": stats["tokens"],
                  "seconds": round(time.perf_counter() - start, 2)}
        (staging / "model" / RECORD).write_text(json.dumps(record, indent=2))
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging / "model", folder)
        except OSError:  # another process cached the same base first
            if not (folder / RECORD).exists():
                shutil.rmtree(folder, ignore_errors=True)
                os.rename(staging / "model", folder)
    return folder, {**record, "cached": False}
