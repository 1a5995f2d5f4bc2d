"""The `hf` generation backend as synthesis uses it: transformers `generate`, seeded per call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import xxhash

from curate.errors import BadUsage
from curate.lm.identity import BackendIdentity, canonical, derive_seed, local_name
from curate.lm.templates import resolve_template

SMALL_MODEL = 50_000_000  # parameters: below this, CPU decoding uses one thread


class SynthHFBackend:
    """The `hf` backend (transformers `generate`) as synthesis uses it.

    It wraps `HFBackend`, resolves the `auto` template, ends sequences at their first stop
    string (and, in completion style, at a BOS token), and seeds each call from the base seed
    and the prompts of the call, so equal calls give equal samples and different calls do not
    share one random stream.
    """

    name = "hf"

    def __init__(self, lm: Any, batch_size: int = 16, template: str = "auto"):
        from curate.lm.generation import HFBackend

        self.lm = lm
        self.template = resolve_template(template, lm.tokenizer)
        tokenizer = lm.tokenizer
        bos, eos = getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)
        # A base model trained on BOS-separated documents (llama2.c models, for one) ends a document by starting
        # the next: in completion style, BOS ends a generation as EOS does.
        stops = (bos,) if self.template == "raw" and bos is not None and bos != eos else ()
        self.inner = HFBackend(lm, batch_size=batch_size, template=self.template, stop_early=True,
                               stop_token_ids=stops)
        self.batch_size = batch_size
        # Decoding a small model on the CPU is a stream of tiny matrix products: extra intra-op threads only
        # wait on each other (20x slower on a busy 2-core machine, measured), so such a model decodes on one.
        self.single_thread = lm.device.type == "cpu" and sum(p.numel() for p in lm.model.parameters()) < SMALL_MODEL
        self.identity = BackendIdentity(
            backend="hf", model=local_name(lm.name), model_hash=lm.model_hash,
            revision=getattr(lm.model.config, "_commit_hash", None), template=self.template)

    def chunk_size(self, n: int) -> int:
        return max(1, self.batch_size // max(n, 1))

    def generate(self, prompts: Sequence[Any], n: int, sampling: Any) -> list[list[Any]]:
        from dataclasses import replace

        import torch

        if sampling.temperature <= 0 and n > 1:
            raise BadUsage(f"greedy decoding (temperature 0) with n={n} gives {n} identical completions",
                           hint="raise --temperature or ask for one sample")
        seeded = replace(sampling, seed=derive_seed(sampling.seed, "hf-call", prompts_digest(prompts), n))
        threads = torch.get_num_threads()
        if self.single_thread:
            torch.set_num_threads(1)
        try:
            return self.inner.generate(prompts, n, seeded)
        finally:
            torch.set_num_threads(threads)


def prompts_digest(prompts: Sequence[Any]) -> str:
    return xxhash.xxh3_64_hexdigest(canonical(list(prompts)).encode("utf-8"))
