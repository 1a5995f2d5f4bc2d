"""Pick a generation backend by name: `make_backend("hf" | "vllm" | "openai", model, ...)`.

All three implement `GenerationBackend` (`curate.lm.generation`) and add what synthesis
needs to cache and describe their work:

- `identity`: a `BackendIdentity` (backend, model, model hash, revision, template, endpoint,
  base URL). It goes into provenance and, minus the base URL, into request-cache keys.
- `chunk_size`: how many prompts one `generate` call should carry for the backend to work
  efficiently (one padded batch for `hf`, many for `vllm`, the concurrency for `openai`).

Templates: `auto` uses the model's chat template when it has one and otherwise sends text
prompts verbatim (`raw`), which is what completion-style synthesis prompts need; `chat`
and `plain` are those of `curate.lm.templates`; `raw` tokenizes a text prompt as it is
(messages fall back to the plain layout).

Seeds: `hf` seeds each call from the base seed and the prompts it carries; `vllm` and
`openai` give every prompt its own seed from the base seed and the prompt's content. A
rerun with the same seed therefore asks for the same samples, whatever else it asks for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from curate.errors import BadUsage

BACKENDS = ("hf", "vllm", "openai")
SYNTH_TEMPLATES = ("auto", "chat", "plain", "raw")
SMALL_MODEL = 50_000_000  # parameters: below this, CPU decoding uses one thread


@dataclass(frozen=True)
class BackendIdentity:
    """Who generated a completion. Never holds credentials."""

    backend: str
    model: str
    model_hash: str | None = None
    revision: str | None = None
    template: str = "auto"
    endpoint: str | None = None  # openai: "chat" or "completions"
    base_url: str | None = None  # openai: scheme, host, port and path only

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cache_fields(self) -> dict[str, Any]:
        """What makes two generations interchangeable. Not the server's address; and where the weights have a
        hash, not the name or folder they were loaded from (a copied folder generates the same)."""
        fields = self.as_dict()
        fields.pop("base_url")
        if self.model_hash:
            fields.pop("model")
        return fields


@dataclass(frozen=True)
class BackendOptions:
    """Settings of every backend; each backend reads the ones it knows."""

    template: str = "auto"
    # hf
    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = 16
    # vllm
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    # openai
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    endpoint: str = "chat"
    concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 6
    backoff: float = 1.0
    backoff_max: float = 60.0
    extra_body: dict[str, Any] = field(default_factory=dict)
    # hf, vllm: where a .gguf model file is dequantised once into a model folder (None: on every load)
    model_cache: str | None = None


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def derive_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed from a base seed and any JSON-able parts (stable across runs and machines)."""
    digest = xxhash.xxh3_64_intdigest(canonical([seed, *parts]).encode("utf-8"))
    return digest & 0x7FFF_FFFF


def local_name(model: str) -> str:
    """A local model folder as its absolute path (provenance that does not depend on the working directory)."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def check_template(template: str) -> str:
    if template not in SYNTH_TEMPLATES:
        raise BadUsage(f"--template {template!r} is not a template", hint="templates: " + ", ".join(SYNTH_TEMPLATES))
    return template


def make_backend(name: str, model: str, options: BackendOptions | None = None, **overrides: Any):
    """A ready backend named `name` for `model` (a hub id, a local folder, or a served model name)."""
    options = options or BackendOptions()
    if overrides:
        options = BackendOptions(**{**asdict(options), **overrides})
    check_template(options.template)
    if name == "hf":
        from curate.lm.loading import load

        if options.revision:
            raise BadUsage("--revision is not supported by the hf backend",
                           hint="download that revision into a folder and pass the folder as --model")

        return SynthHFBackend(load(model, dtype=options.dtype, device=options.device,
                                   trust_remote_code=options.trust_remote_code, cache_dir=options.model_cache),
                              batch_size=options.batch_size, template=options.template)
    if name == "vllm":
        from curate.lm.gguf_cache import cached_folder, is_gguf
        from curate.lm.vllm_backend import VLLMBackend

        if is_gguf(model) and options.model_cache:  # vLLM's own GGUF support needs a separate tokenizer
            model = str(cached_folder(Path(model), Path(options.model_cache))[0])
        return VLLMBackend(model, template=options.template, dtype=options.dtype,
                           tensor_parallel_size=options.tensor_parallel_size,
                           gpu_memory_utilization=options.gpu_memory_utilization,
                           max_model_len=options.max_model_len, revision=options.revision,
                           trust_remote_code=options.trust_remote_code)
    if name == "openai":
        from curate.lm.openai_backend import OpenAIBackend, OpenAIConfig

        if not options.base_url:
            raise BadUsage("--backend openai needs --base-url",
                           hint="e.g. --base-url http://localhost:8000/v1 (vLLM serve, SGLang, llama.cpp server)")
        return OpenAIBackend(OpenAIConfig(
            model=model, base_url=options.base_url, endpoint=options.endpoint, api_key_env=options.api_key_env,
            concurrency=options.concurrency, timeout=options.timeout, max_retries=options.max_retries,
            backoff=options.backoff, backoff_max=options.backoff_max, revision=options.revision,
            template=options.template, extra_body=dict(options.extra_body)))
    raise BadUsage(f"--backend {name!r} is not a backend", hint="backends: " + ", ".join(BACKENDS))


def resolve_template(template: str, tokenizer: Any) -> str:
    """`auto` becomes `chat` for a tokenizer with a chat template, else `raw`."""
    check_template(template)
    if template == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "raw"
    return template


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
