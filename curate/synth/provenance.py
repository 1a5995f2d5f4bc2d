"""Where a synthesized row came from.

Every row's `meta` holds a `synth` object:

    {"recipe": "self-instruct", "run": "synth-self-instruct-…",
     "generator": {"backend": "hf", "model": "…", "model_hash": "…", "revision": null,
                   "template": "raw", "endpoint": null, "base_url": null},
     "prompt_template": "self-instruct/instances-input-first",
     "sampling": {"instructions": {...SamplingParams...}, "instances": {...}},
     "seed": 0, "generated_at": "2025-01-01T12:00:00Z", "generator_license": "llama3.1"}

and the version's lineage step (op `synth`) holds the same generator, sampling, seed,
license findings and run counters in its params, with the model id and hash in their own
columns. `curate show` prints both. No credential is ever part of it: backends hold the
name of the environment variable that has the API key, never the key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import xxhash

from curate import __version__
from curate.lm.generation import SamplingParams
from curate.lm.identity import BackendIdentity, canonical
from curate.synth.licenses import GeneratorLicense


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_id(recipe: str, identity: BackendIdentity, seed: int, config: Any, inputs: list[str]) -> str:
    """Deterministic: a rerun of the same run (to resume it) gets the same id."""
    payload = canonical({"recipe": recipe, "generator": identity.cache_fields(), "seed": seed,
                         "config": asdict(config) if hasattr(config, "__dataclass_fields__") else config,
                         "inputs": inputs})
    return f"synth-{recipe}-{xxhash.xxh3_64_hexdigest(payload.encode())[:12]}"


@dataclass
class RunProvenance:
    recipe: str
    run: str
    identity: BackendIdentity
    seed: int
    license: GeneratorLicense
    sampling: dict[str, SamplingParams] = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def generator(self) -> dict[str, Any]:
        return self.identity.as_dict()

    def row(self, prompt_template: str, generated_at: float, **extra: Any) -> dict[str, Any]:
        """The `synth` object of one row's meta."""
        record: dict[str, Any] = {
            "recipe": self.recipe, "run": self.run, "generator": self.generator(),
            "prompt_template": prompt_template,
            "sampling": {stage: asdict(params) for stage, params in self.sampling.items()},
            "seed": self.seed, "generated_at": iso(generated_at), "generator_license": self.license.id,
        }
        record.update(extra)
        return record

    def lineage_params(self, config: Any, **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {
            "run": self.run, "generator": self.generator(),
            "sampling": {stage: asdict(params) for stage, params in self.sampling.items()},
            "config": asdict(config) if hasattr(config, "__dataclass_fields__") else config,
            "generator_license": self.license.as_dict(), "started_at": self.started_at,
            "code_version": __version__,
        }
        if self.license.warning:
            params["license_warning"] = self.license.warning
        params.update(extra)
        return params
