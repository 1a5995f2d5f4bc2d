"""`curate synth` as a Python API: build the backend, cache, provenance and run one recipe.

    from curate.synth.runner import SynthJob, synthesize_self_instruct
    result = synthesize_self_instruct(ws, SynthJob(recipe="self-instruct", model="Qwen/Qwen2.5-0.5B-Instruct"),
                                      "seed_tasks.jsonl", SelfInstructConfig(num_instructions=200))

The CLI calls these same functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.catalog.versions import check_name
from curate.catalog.workspace import Workspace
from curate.lm.backends import BackendOptions, make_backend
from curate.synth import licenses
from curate.synth.cache import CachedBackend, GenerationCache
from curate.synth.context import SynthContext, SynthResult
from curate.synth.provenance import RunProvenance, run_id

RECIPES = ("self-instruct", "rejection", "gap-fill")


@dataclass
class SynthJob:
    recipe: str
    model: str
    backend: str = "hf"
    options: BackendOptions = field(default_factory=BackendOptions)
    name: str | None = None
    license: str | None = None  # the output dataset's license; default: derived from the source and generator
    source_license: str | None = None  # self-instruct: the seed tasks' license (a catalog source has its own)
    generator_license: str | None = None  # declare the generator's license when it cannot be detected
    seed: int = 0


def dataset_license(job: SynthJob, generator: licenses.GeneratorLicense, source: str | None) -> str:
    if job.license:
        return job.license
    terms = f" ({generator.terms.kind})" if generator.terms else ""
    return f"source: {source or 'unknown'}; generator: {generator.id or 'unknown'}{terms}"


def open_context(ws: Workspace, job: SynthJob, config: Any, inputs: list[str],
                 progress: Callable[..., None] | None = None, warn: Callable[[str], None] | None = None,
                 backend: Any | None = None, source_license: str | None = None) -> SynthContext:
    """The recipe's context; `backend` replaces the one `job` names (tests, or a backend built by the caller)."""
    if job.name:
        check_name(job.name)
    data = licenses.data_warning(source_license)
    if data and warn:
        warn(data)
    generator = backend if backend is not None else make_backend(job.backend, job.model, job.options)
    identity = generator.identity
    found = licenses.detect(job.model, job.generator_license, identity.base_url)
    if found.warning and warn:
        warn(found.warning)
    provenance = RunProvenance(job.recipe, run_id(job.recipe, identity, job.seed, config, inputs), identity,
                               job.seed, found)
    cached = CachedBackend(generator, GenerationCache.for_workspace(ws.root))
    kwargs: dict[str, Any] = {}
    if progress:
        kwargs["progress"] = progress
    if warn:
        kwargs["warn"] = warn
    return SynthContext(ws, cached, job.seed, provenance, **kwargs)


def synthesize_self_instruct(ws: Workspace, job: SynthJob, seeds: str | Path, config: Any,
                             progress: Callable[..., None] | None = None, warn: Callable[[str], None] | None = None,
                             backend: Any | None = None) -> SynthResult:
    from curate.synth import self_instruct
    from curate.synth.seed_sources import resolve_seeds

    config.validate()
    source = resolve_seeds(ws, seeds)  # a seed file, any file ingest reads, or NAME@vN
    tasks, inputs = source.tasks, source.inputs
    self_instruct.check_seeds(tasks, config)  # before a model is loaded or anything generated
    seeds_license = job.source_license or source.license
    ctx = open_context(ws, job, config, inputs, progress, warn, backend, seeds_license)
    try:
        return self_instruct.run(ctx, tasks, config, job.name or "self-instruct", inputs,
                                 dataset_license(job, ctx.provenance.license, seeds_license))
    finally:
        ctx.backend.cache.close()


def _on_source(ws: Workspace, job: SynthJob, dataset: str, config: Any, progress: Callable[..., None] | None,
               warn: Callable[[str], None] | None, backend: Any | None,
               recipe: Callable[[SynthContext, Any, str], Any]) -> Any:
    """`recipe(ctx, source, license)` over the catalog dataset `dataset`, the generation cache closed after."""
    from curate.catalog.versions import resolve

    source = resolve(ws, dataset)
    ctx = open_context(ws, job, config, [source.ref, source.content_hash], progress, warn, backend, source.license)
    try:
        return recipe(ctx, source, dataset_license(job, ctx.provenance.license, source.license))
    finally:
        ctx.backend.cache.close()


def synthesize_rejection(ws: Workspace, job: SynthJob, dataset: str, config: Any,
                         progress: Callable[..., None] | None = None, warn: Callable[[str], None] | None = None,
                         backend: Any | None = None, reward: Any = None) -> SynthResult:
    from curate.synth import rejection

    config.validate()
    reward = reward if reward is not None else config.verifier()
    return _on_source(ws, job, dataset, config, progress, warn, backend, lambda ctx, source, license: rejection.run(
        ctx, source, config, job.name or f"{source.name}-rejection", license, reward=reward))


def synthesize_gap_fill(ws: Workspace, job: SynthJob, dataset: str, config: Any,
                        progress: Callable[..., None] | None = None, warn: Callable[[str], None] | None = None,
                        backend: Any | None = None) -> tuple[SynthResult, Any]:
    """Returns the synth result (the candidates version) and the selection report (None with --strategy none)."""
    from curate.synth import gap_fill

    config.validate()
    return _on_source(ws, job, dataset, config, progress, warn, backend, lambda ctx, source, license: gap_fill.run(
        ctx, source, config, job.name or f"{source.name}-gapfill", license))
