"""The proxy model behind `--model proxy`: a small Llama trained on the dataset itself.

Selection with a small model trained on the pool (the small-proxy idea of S2L, Yang
et al. 2024, and DSIR, Xie et al. 2023) works on a fresh machine with no download.
The proxy uses a byte-level tokenizer, trains as a plain language model on a sample
of the dataset (prompt and response, rendered with the plain template), and is cached
in the workspace under the dataset's content hash and the training config, so a
second selection on the same data reuses it. The result is an ordinary HF model
folder that `curate.lm.load` opens.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import xxhash

from curate.catalog.versions import DatasetVersion, lineage_of, resolve
from curate.catalog.workspace import Workspace
from curate.errors import BadUsage, CurateError
from curate.lm import byte_tokenizer
from curate.lm.templates import render_prompt  # torch is imported where a model is built: the CLI starts fast


@dataclass(frozen=True)
class ProxyConfig:
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 384
    seq_len: int = 256
    max_positions: int = 4096
    max_examples: int = 20_000
    steps: int = 300
    batch_tokens: int = 4096
    lr: float = 3e-3
    warmup: int = 20
    weight_decay: float = 0.01
    seed: int = 0

    def key(self) -> str:
        return xxhash.xxh3_64_hexdigest(json.dumps(asdict(self), sort_keys=True).encode())


STEPS_ENV = "CURATE_PROXY_STEPS"  # the proxy's training steps when none are given (quick tries, CI)


def default_config() -> ProxyConfig:
    """The proxy `--model proxy` trains: ProxyConfig's defaults, with steps from $CURATE_PROXY_STEPS if set."""
    value = os.environ.get(STEPS_ENV, "").strip()
    if not value:
        return ProxyConfig()
    if not value.isdigit() or int(value) < 1:
        raise BadUsage(f"${STEPS_ENV}={value!r} is not a positive whole number of steps",
                       hint=f"unset it for the default ({ProxyConfig.steps}), or set e.g. {STEPS_ENV}=100")
    return ProxyConfig(steps=int(value))


class _PlainTemplate:
    chat_template = None


def example_text(prompt, response: str | None) -> str:
    """The proxy's view of one example: the plain-template prompt, then the response."""
    return render_prompt(prompt, _PlainTemplate(), "plain") + (response or "")


def sample_texts(version: DatasetVersion, limit: int, seed: int) -> list[str]:
    """Up to `limit` examples, chosen uniformly at random (by seed), as proxy training text."""
    rows = version.rows
    scan = version.scan().select("prompt", "response")
    if rows > limit:
        keep = np.sort(np.random.default_rng(seed).choice(rows, size=limit, replace=False))
        scan = scan.with_row_index("_row").filter(pl.col("_row").is_in(pl.Series(keep, dtype=pl.UInt32).implode()))
    frame = scan.collect()
    return [example_text(p, r) for p, r in zip(frame["prompt"].to_list(), frame["response"].to_list())]


def _token_stream(texts: list[str]):
    import torch

    ids: list[int] = []
    for text in texts:
        ids.extend(byte_tokenizer.byte_ids(text))
        ids.append(byte_tokenizer.EOS)
    return torch.tensor(ids, dtype=torch.long)


def _lr(step: int, config: ProxyConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def build_model(config: ProxyConfig):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=byte_tokenizer.VOCAB_SIZE, hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size, num_hidden_layers=config.layers,
        num_attention_heads=config.heads, num_key_value_heads=config.heads,
        max_position_embeddings=config.max_positions, tie_word_embeddings=True,
        bos_token_id=byte_tokenizer.BOS, eos_token_id=byte_tokenizer.EOS, pad_token_id=byte_tokenizer.PAD,
    )
    torch.manual_seed(config.seed)
    return LlamaForCausalLM(llama)


def train_proxy(
    texts: list[str], folder: Path, config: ProxyConfig, progress: Callable[[int, float], None] | None = None
) -> dict:
    """Train a proxy on `texts` and save it (model and tokenizer) to `folder`."""
    import torch

    start = time.perf_counter()
    stream = _token_stream(texts)
    seq = min(config.seq_len, max(8, len(stream) - 1))
    starts = len(stream) - seq - 1
    rows = max(1, config.batch_tokens // seq)
    generator = torch.Generator().manual_seed(config.seed)
    model = build_model(config)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.95))
    losses = []
    for step in range(config.steps):
        offsets = torch.randint(0, max(1, starts + 1), (rows,), generator=generator)
        batch = torch.stack([stream[o:o + seq + 1] for o in offsets.tolist()])
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, config)
        logits = model(input_ids=batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if progress:
            progress(step + 1, losses[-1])
    model.eval()
    model.save_pretrained(str(folder))
    byte_tokenizer.save(folder)
    tail = losses[-max(1, len(losses) // 10):]
    stats = {"examples": len(texts), "tokens": int(len(stream)), "steps": config.steps,
             "first_loss": losses[0], "final_loss": float(np.mean(tail)),
             "seconds": round(time.perf_counter() - start, 2), "config": asdict(config)}
    (folder / "proxy.json").write_text(json.dumps(stats, indent=2))
    return stats


def proxy_folder(ws: Workspace, version: DatasetVersion, config: ProxyConfig) -> Path:
    return ws.models_dir / f"proxy-{version.content_hash[:16]}-{config.key()[:8]}"


SUBSET_OPS = ("select", "curriculum")  # steps whose output rows are rows of their one input


def subset_chain(ws: Workspace, version: DatasetVersion) -> list[DatasetVersion]:
    """`version`, then the version it was selected from, and so on up to the first one that is not
    a subset of a catalog version (an ingest, a synth or mix run, a chain with several inputs)."""
    chain = [version]
    while len(chain) < 64:
        steps = lineage_of(ws, chain[-1])
        inputs = steps[0]["inputs"] if steps else []
        if not steps or any(step["op"] not in SUBSET_OPS for step in steps) or len(inputs) != 1:
            break
        try:
            parent = resolve(ws, inputs[0])
        except CurateError:  # a source outside the catalog, or a version since deleted
            break
        if parent.ref in {v.ref for v in chain}:
            break
        chain.append(parent)
    return chain


def cached_proxy(ws: Workspace, version: DatasetVersion) -> Path | None:
    """The newest proxy cached for `version` itself or for a version it was selected from.

    A selection's rows are rows of its source, so the source's proxy has seen exactly them; reusing it
    saves training a new proxy for every derived version, and `curate train proxy X --steps N` makes
    the proxy that X and its selections use."""
    for candidate in subset_chain(ws, version):
        found = sorted(ws.models_dir.glob(f"proxy-{candidate.content_hash[:16]}-*/proxy.json"),
                       key=lambda path: path.stat().st_mtime)
        if found:
            return found[-1].parent
    return None


def ensure_proxy(
    ws: Workspace,
    version: DatasetVersion,
    config: ProxyConfig | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[Path, dict]:
    """The proxy for `version`: from the cache, or trained now and cached. Returns (folder, stats).

    With no `config` (what `--model proxy` asks for), any proxy cached for the version or for a version
    it was selected from is used (`cached_proxy`); else one is trained on the first version of that chain."""
    if config is None:
        folder = cached_proxy(ws, version)
        if folder is not None:
            return folder, {**json.loads((folder / "proxy.json").read_text()), "cached": True}
        version = subset_chain(ws, version)[-1]
    config = config or default_config()
    folder = proxy_folder(ws, version, config)
    if (folder / "proxy.json").exists():
        return folder, {**json.loads((folder / "proxy.json").read_text()), "cached": True}
    with ws.staging("proxy") as staging:
        texts = sample_texts(version, config.max_examples, config.seed)
        stats = train_proxy(texts, staging / "model", config, progress)
        stats["dataset"] = version.ref
        stats["content_hash"] = version.content_hash
        (staging / "model" / "proxy.json").write_text(json.dumps(stats, indent=2))
        try:
            os.rename(staging / "model", folder)
        except OSError:  # another process cached the same proxy first
            if not (folder / "proxy.json").exists():
                shutil.rmtree(folder, ignore_errors=True)
                os.rename(staging / "model", folder)
    return folder, {**stats, "cached": False}


def resolve_model(
    ws: Workspace,
    version: DatasetVersion,
    model: str,
    config: ProxyConfig | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> str:
    """What `--model` names, as something `curate.lm.load` opens: "proxy" becomes the dataset's cached proxy,
    a `.gguf` file the Hugging Face folder it is dequantised into once (cached in the workspace's models/)."""
    if model == "proxy":
        folder, _ = ensure_proxy(ws, version, config, progress)
        return str(folder)
    from curate.lm.gguf_cache import cached_folder, is_gguf

    if is_gguf(model):
        return str(cached_folder(Path(model), ws.models_dir)[0])
    return model
