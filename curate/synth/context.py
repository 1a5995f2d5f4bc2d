"""What every recipe works with: the workspace, the cached backend, provenance and reporting hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from curate.catalog.versions import DatasetVersion
from curate.catalog.workspace import Workspace
from curate.synth.cache import CachedBackend
from curate.synth.provenance import RunProvenance


def _quiet(*_: Any, **__: Any) -> None:
    return None


@dataclass
class SynthContext:
    ws: Workspace
    backend: CachedBackend
    seed: int
    provenance: RunProvenance
    progress: Callable[..., None] = _quiet  # progress(stage, done, total)
    warn: Callable[[str], None] = _quiet


@dataclass
class SynthResult:
    version: DatasetVersion
    recipe: str
    rows: int
    drop_counts: dict[str, int]
    prompts_requested: int  # prompts the recipe asked the backend for (cache hits included)
    cache_hits: int
    generated: int  # requests the backend actually ran in this run
    seconds: float
    license_warning: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
