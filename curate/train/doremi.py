"""DoReMi domain weights with small byte-level proxies (Xie et al., NeurIPS 2023, arXiv 2305.10429).

Algorithm 1 of the paper, on curate's proxies: the reference model is the dataset's
cached proxy (`ensure_proxy`, trained on the natural mixture: DoReMi's reference weights
are then the dataset's own proportions); a fresh proxy of the same architecture is trained
for T steps. Each step draws the same number of sequences from every domain, computes the
per-domain excess loss lambda_i (per-token loss of the proxy minus the reference, clipped
at 0, averaged over the domain's tokens), updates the weights by exponentiated gradient
with smoothing (`curate.selectors.mixing_rules.DoReMiState`), and takes a gradient step
on sum_i alpha_i * L_i. The result is the weights averaged over the steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace
from curate.errors import BadInput
from curate.lm import byte_tokenizer
from curate.selectors.mixing_rules import DoReMiState
from curate.train.proxy import ProxyConfig, build_model, ensure_proxy


@dataclass(frozen=True)
class DoReMiConfig:
    steps: int = 200
    seqs_per_domain: int = 4
    seq_len: int = 256
    lr: float = 3e-3
    eta: float = 1.0  # the paper's step size
    smoothing: float = 1e-3  # the paper's c
    max_examples_per_domain: int = 2000
    seed: int = 0


def _streams(texts_by_domain: list[list[str]]):
    import torch

    streams = []
    for texts in texts_by_domain:
        ids: list[int] = []
        for text in texts:
            ids.extend(byte_tokenizer.byte_ids(text))
            ids.append(byte_tokenizer.EOS)
        streams.append(torch.tensor(ids, dtype=torch.long))
    return streams


def doremi_weights(
    ws: Workspace,
    version: DatasetVersion,
    texts_by_domain: list[list[str]],
    config: DoReMiConfig = DoReMiConfig(),
    proxy_config: ProxyConfig | None = None,
    progress: Callable[[int, np.ndarray], None] | None = None,
) -> tuple[np.ndarray, list[np.ndarray], dict]:
    """(averaged weights, the weights after each step, statistics) for the given domains' texts."""
    import torch

    if any(len(t) == 0 for t in texts_by_domain):
        raise BadInput("DoReMi needs examples in every domain")
    start = time.perf_counter()
    proxy_config = proxy_config or ProxyConfig()
    reference_dir, _ = ensure_proxy(ws, version, proxy_config)
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(str(reference_dir)).eval().requires_grad_(False)
    torch.manual_seed(config.seed)
    proxy = build_model(proxy_config)
    proxy.train()
    optimizer = torch.optim.AdamW(proxy.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=0.01)
    streams = _streams(texts_by_domain)
    generator = torch.Generator().manual_seed(config.seed)
    state = DoReMiState.uniform(len(streams), config.eta, config.smoothing)
    history = []
    for step in range(config.steps):
        losses, excess = [], np.zeros(len(streams))
        for i, stream in enumerate(streams):
            seq = min(config.seq_len, len(stream) - 1)
            offsets = torch.randint(0, max(1, len(stream) - seq), (config.seqs_per_domain,), generator=generator)
            batch = torch.stack([stream[o:o + seq + 1] for o in offsets.tolist()])
            token_loss = _token_losses(proxy, batch)
            with torch.no_grad():
                reference_loss = _token_losses(reference, batch)
            excess[i] = float(torch.clamp(token_loss.detach() - reference_loss, min=0).mean())
            losses.append(token_loss.mean())
        alpha = state.update(excess)
        objective = sum(float(a) * loss for a, loss in zip(alpha, losses))
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        torch.nn.utils.clip_grad_norm_(proxy.parameters(), 1.0)
        optimizer.step()
        history.append(alpha.copy())
        if progress:
            progress(step + 1, alpha)
    return state.average, history, {"steps": config.steps, "reference": str(reference_dir),
                                     "seconds": round(time.perf_counter() - start, 2)}


def _token_losses(model, batch):
    import torch

    logits = model(input_ids=batch[:, :-1]).logits
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                                             reduction="none")
