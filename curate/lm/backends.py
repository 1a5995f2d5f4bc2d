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

from dataclasses import dataclass, fields, replace
from typing import Any

from curate.errors import BadUsage
from curate.lm.openai_backend import OpenAISettings
from curate.lm.templates import check_template

BACKENDS = ("hf", "vllm", "openai")


@dataclass(frozen=True)
class BackendOptions(OpenAISettings):
    """Settings of every backend; each backend reads the ones it knows (openai: those of `OpenAISettings`)."""

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
    # hf, vllm: where a .gguf model file is dequantised once into a model folder (None: on every load)
    model_cache: str | None = None


def make_backend(name: str, model: str, options: BackendOptions | None = None, **overrides: Any):
    """A ready backend named `name` for `model` (a hub id, a local folder, or a served model name)."""
    options = options or BackendOptions()
    if overrides:
        options = replace(options, **overrides)
    check_template(options.template)
    if name == "hf":
        from curate.lm.hf_backend import SynthHFBackend
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

        settings = {f.name: getattr(options, f.name) for f in fields(OpenAISettings)}
        settings["extra_body"] = dict(options.extra_body)
        return OpenAIBackend(OpenAIConfig(**settings, model=model, revision=options.revision,
                                          template=options.template))
    raise BadUsage(f"--backend {name!r} is not a backend", hint="backends: " + ", ".join(BACKENDS))
