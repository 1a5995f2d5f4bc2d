"""What identifies a generation: the backend that made it, and stable seeds and digests.

Every generation backend (`hf`, `vllm`, `openai`) describes itself with a `BackendIdentity`,
which goes into provenance and, minus the server's address, into request-cache keys. The
backends import these helpers from here; only the factory (`curate.lm.backends`) imports the
backends.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import xxhash


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


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def derive_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed from a base seed and any JSON-able parts (stable across runs and machines)."""
    digest = xxhash.xxh3_64_intdigest(canonical([seed, *parts]).encode("utf-8"))
    return digest & 0x7FFF_FFFF


def local_name(model: str) -> str:
    """A local model folder as its absolute path (provenance that does not depend on the working directory)."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model
