"""The `vllm` backend: offline batched generation with vLLM's `LLM` engine (GPU, optional extra).

Install it with `pip install 'curate[vllm]'`. vLLM is imported when the backend is made,
never at import time, so curate works without it; asking for it when it is missing is a
clear `CurateError` saying how to install it, or to serve the model with `vllm serve` and
use `--backend openai`.

Prompts are rendered with the same templates as the `hf` backend (the tokenizer's chat
template for `chat`, text as it is for `raw`) and handed to vLLM as token ids, so both
backends see identical inputs. Every prompt gets its own `SamplingParams` whose seed comes
from the base seed and the prompt's content: a prompt's samples do not depend on the
batch it was sent in, which is what lets an interrupted run resume from its cache.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import xxhash

from curate.errors import BadUsage, CurateError
from curate.lm.generation import Completion, SamplingParams
from curate.lm.identity import BackendIdentity, canonical, derive_seed, local_name
from curate.lm.templates import Prompt, prompt_token_ids, resolve_template


class VLLMMissing(CurateError):
    """vLLM is not installed."""


def import_vllm() -> Any:
    try:
        return importlib.import_module("vllm")
    except ImportError as exc:
        raise VLLMMissing(
            f"--backend vllm needs the vllm package, which is not installed ({exc})",
            hint="pip install 'curate[vllm]' on a machine with a GPU, or use --backend hf; for synthesis, "
                 "`curate synth self-instruct SEEDS --backend openai --base-url http://HOST:8000/v1` talks to a "
                 "`vllm serve MODEL` server",
        ) from None


def sampling_params(vllm: Any, sampling: SamplingParams, n: int, seed: int) -> Any:
    """curate's `SamplingParams` as vLLM's (top_k 0, "no cut", is -1 there)."""
    return vllm.SamplingParams(n=n, temperature=sampling.temperature, top_p=sampling.top_p,
                               top_k=sampling.top_k if sampling.top_k > 0 else -1,
                               max_tokens=sampling.max_new_tokens, seed=seed,
                               stop=list(sampling.stop) or None)


def _model_hash(model: str, revision: str | None) -> str:
    path = Path(model).expanduser()
    if path.exists():
        from curate.lm.loading import fingerprint

        return fingerprint(path)
    return xxhash.xxh3_128_hexdigest(f"{model}@{revision}".encode())


def trained_weights(network: Any) -> Iterator[tuple[str, Any]]:
    """The trainer's weights as the base checkpoint names them: LoRA adapters merged in, PEFT
    wrappers' prefixes removed (as TRL does before loading weights into vLLM). Consume it to the
    end: the adapters are unmerged again when it finishes."""
    peft = hasattr(network, "peft_config") and hasattr(network, "merge_adapter")
    if peft:
        network.merge_adapter()
    try:
        for name, param in network.named_parameters():
            name = name.removeprefix("base_model.model.").replace(".base_layer", "")
            if peft and (".lora_" in name or "original_module" in name):
                continue
            yield name.replace("modules_to_save.default.", ""), param.data
    finally:
        if peft:
            network.unmerge_adapter()


class VLLMBackend:
    """Batched sampling with vLLM. For GRPO, `sync_weights` loads the policy's current weights
    into the engine before each step's rollouts (the engine runs in this process, beside the trainer)."""

    name = "vllm"

    def __init__(self, model: str, *, template: str = "auto", dtype: str = "auto", tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                 revision: str | None = None, trust_remote_code: bool = False, chunk: int = 1024,
                 colocate: bool = False):
        if colocate:  # the engine must live in this process for sync_weights to reach its model (TRL does the same)
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.vllm = import_vllm()
        kwargs: dict[str, Any] = {"model": model, "dtype": dtype, "tensor_parallel_size": tensor_parallel_size,
                                  "gpu_memory_utilization": gpu_memory_utilization,
                                  "trust_remote_code": trust_remote_code}
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        if revision:
            kwargs["revision"] = revision
        try:
            self.llm = self.vllm.LLM(**kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise CurateError(f"vllm could not load {model}: {reason}",
                              hint="check the model id or folder, --dtype and the GPU memory") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.template = resolve_template(template, self.tokenizer)
        self._chunk = chunk
        self.identity = BackendIdentity(backend="vllm", model=local_name(model),
                                        model_hash=_model_hash(model, revision), revision=revision,
                                        template=self.template)

    def chunk_size(self, n: int) -> int:
        return max(1, self._chunk // max(n, 1))

    def _engine_model(self) -> Any:
        try:
            return self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        except AttributeError as exc:
            raise CurateError("this vLLM engine does not expose its model in this process, so GRPO cannot "
                              "load the trained weights into it",
                              hint="run with VLLM_ENABLE_V1_MULTIPROCESSING=0, or train with --backend hf") from exc

    def sync_weights(self, network: Any) -> None:
        """Load `network`'s current weights into the engine and drop its prefix cache."""
        model = self._engine_model()
        for name, tensor in trained_weights(network):
            model.load_weights([(name, tensor)])
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()

    def encode(self, prompt: Prompt) -> list[int]:
        return prompt_token_ids(prompt, self.tokenizer, self.template)

    def generate(self, prompts: Sequence[Prompt], n: int, sampling: SamplingParams) -> list[list[Completion]]:
        if n < 1:
            raise BadUsage(f"n must be at least 1, not {n}")
        if sampling.temperature <= 0 and n > 1:
            raise BadUsage(f"greedy decoding (temperature 0) with n={n} gives {n} identical completions",
                           hint="raise --temperature or ask for one sample")
        if not prompts:
            return []
        encoded = [self.encode(p) for p in prompts]
        params = [sampling_params(self.vllm, sampling, n, derive_seed(sampling.seed, "vllm", canonical(p)))
                  for p in prompts]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in encoded], params, use_tqdm=False)
        if len(outputs) != len(prompts):
            raise CurateError(f"vllm returned {len(outputs)} outputs for {len(prompts)} prompts")
        results = []
        for index, (ids, output) in enumerate(zip(encoded, outputs)):
            group = []
            for sample, choice in enumerate(output.outputs):
                finish = choice.finish_reason or "stop"
                group.append(Completion(choice.text, list(choice.token_ids), "length" if finish == "length" else "stop",
                                        prompt_index=index, sample_index=sample, prompt_ids=list(ids)))
            results.append(group)
        return results
