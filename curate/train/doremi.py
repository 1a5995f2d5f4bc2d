"""DoReMi domain weights with small byte-level proxies (Xie et al., NeurIPS 2023, arXiv 2305.10429).

Algorithm 1 of the paper. With k domains, uniform u = 1/k, step size eta and smoothing c,
each step t:
    lambda_t[i] = (1 / sum_{x in B_i} |x|) * sum_{x in B_i} sum_j max(l_theta,j(x) - l_ref,j(x), 0)
    alpha'_t    = alpha_{t-1} * exp(eta * lambda_t)
    alpha_t     = (1 - c) * alpha'_t / sum(alpha'_t) + c * u
and the proxy takes a gradient step on sum_i alpha_t[i] * L_i(theta). The output is the
average of alpha_t over the T steps. The paper uses eta = 1 and c = 1e-3.

On curate's proxies: the reference model is the dataset's cached proxy (`ensure_proxy`,
trained on the natural mixture: DoReMi's reference weights are then the dataset's own
proportions); a fresh proxy of the same architecture is trained for T steps. Each step draws
the same number of sequences from every domain, computes lambda_i with `excess_loss`, updates
the weights with `DoReMiState`, and takes a gradient step on sum_i alpha_i * L_i. The result
is the weights averaged over the steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace
from curate.errors import BadInput
from curate.lm import byte_tokenizer
from curate.train.proxy import ProxyConfig, build_model, ensure_proxy


def excess_loss(proxy_token_losses: list[np.ndarray], reference_token_losses: list[np.ndarray]) -> float:
    """lambda for one domain: clipped per-token excess loss, averaged over the domain's tokens."""
    tokens = sum(len(x) for x in proxy_token_losses)
    if tokens == 0:
        return 0.0
    total = sum(float(np.maximum(p - r, 0.0).sum()) for p, r in zip(proxy_token_losses, reference_token_losses))
    return total / tokens


def doremi_step(alpha: np.ndarray, excess: np.ndarray, eta: float = 1.0, smoothing: float = 1e-3) -> np.ndarray:
    """One exponentiated-gradient step on the domain weights, then smoothing toward uniform."""
    raised = alpha * np.exp(eta * excess)
    return (1 - smoothing) * raised / raised.sum() + smoothing / len(alpha)


@dataclass
class DoReMiState:
    """Running weights and the sum needed for their average over steps."""

    alpha: np.ndarray
    eta: float = 1.0
    smoothing: float = 1e-3
    total: np.ndarray = field(default=None)  # type: ignore[assignment]
    steps: int = 0

    @classmethod
    def uniform(cls, domains: int, eta: float = 1.0, smoothing: float = 1e-3) -> DoReMiState:
        return cls(np.full(domains, 1.0 / domains), eta, smoothing, np.zeros(domains), 0)

    def update(self, excess: np.ndarray) -> np.ndarray:
        self.alpha = doremi_step(self.alpha, np.asarray(excess, dtype=float), self.eta, self.smoothing)
        self.total = self.alpha if self.total is None else self.total + self.alpha
        self.steps += 1
        return self.alpha

    @property
    def average(self) -> np.ndarray:
        return self.total / self.steps if self.steps else self.alpha


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
            excess[i] = excess_loss([token_loss.detach().double().numpy()], [reference_loss.double().numpy()])
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
