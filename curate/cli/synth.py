"""`curate synth`: synthetic data with open-weight models (self-instruct, rejection sampling, gap filling)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from curate.catalog.workspace import Workspace
from curate.cli import ui
from curate.cli.options import ConfigOpt, DebugOpt, QuietOpt, SeedOpt, WorkspaceOpt, parse_key_values
from curate.errors import BadUsage


SYNTH_UNITS = {"instructions": "instructions", "classification": "tasks", "instances": "tasks",
               "rejection sampling": "prompts"}  # what each recipe stage counts; gap-fill counts examples


def _warn(message: str) -> None:
    ui.note("warning", message, style="bold yellow")


def _targets(items: list[str] | None) -> tuple[tuple[str, float], ...]:
    out = []
    for key, value in parse_key_values(items, "--target").items():
        try:
            out.append((key, float(value)))
        except ValueError:
            raise BadUsage(f"--target {key}={value}: the weight must be a number") from None
    return tuple(out)


def synth_cmd(
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="self-instruct, rejection or gap-fill.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Generator: a model folder or hub id (hf, vllm), or "
                                                             "the served model name (openai).")],
    n: Annotated[int | None, typer.Option("-n", help="self-instruct: instructions to keep (200); rejection: prompts "
                                                     "to sample (all); gap-fill: new examples (100).")] = None,
    seeds: Annotated[str | None, typer.Option(help="self-instruct: seed tasks (JSON lines or a JSON array: "
                                                   "instruction, instances, is_classification; or Alpaca's "
                                                   "instruction, input, output), any file `curate ingest` reads, "
                                                   "or a dataset NAME@vN.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="rejection, gap-fill: the source "
                                                                         "dataset, NAME or NAME@vN.")] = None,
    name: Annotated[str | None, typer.Option("--name", "--out", "-o", help="Output dataset name.")] = None,
    backend: Annotated[str, typer.Option(help="hf, vllm or openai.")] = "hf",
    base_url: Annotated[str | None, typer.Option(help="openai: the API root, e.g. http://localhost:8000/v1.")] = None,
    api_key_env: Annotated[str, typer.Option(help="openai: environment variable holding the API "
                                                  "key.")] = "OPENAI_API_KEY",
    endpoint: Annotated[str, typer.Option(help="openai: chat or completions.")] = "chat",
    concurrency: Annotated[int, typer.Option(help="openai: requests in flight at most.")] = 8,
    timeout: Annotated[float, typer.Option(help="openai: seconds to connect and for each read.")] = 120.0,
    max_retries: Annotated[int, typer.Option(help="openai: retries on 429, 5xx, timeouts, lost connections.")] = 6,
    template: Annotated[str, typer.Option(help="auto, chat, plain or raw (completion style).")] = "auto",
    dtype: Annotated[str, typer.Option(help="hf/vllm weights: auto, float32, bfloat16, float16.")] = "auto",
    device: Annotated[str, typer.Option(help="hf: auto, cpu, cuda, cuda:1.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="hf: sequences generated together.")] = 16,
    tensor_parallel_size: Annotated[int, typer.Option(help="vllm: GPUs per model.")] = 1,
    revision: Annotated[str | None, typer.Option(help="Model revision (recorded; vllm loads it).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (recipe default).")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling (recipe default).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Tokens per generation (recipe default).")] = None,
    license: Annotated[str | None, typer.Option(help="License of the output dataset (default: source and "
                                                     "generator terms).")] = None,
    generator_license: Annotated[str | None, typer.Option(help="The generator's license id, when it cannot be "
                                                               "detected (e.g. llama3.1, gemma, apache-2.0).")] = None,
    seeds_license: Annotated[str | None, typer.Option(help="self-instruct: license of the seed tasks (recorded; "
                                                           "e.g. apache-2.0, cc-by-nc-4.0).")] = None,
    rouge_threshold: Annotated[float, typer.Option(help="self-instruct, gap-fill: ROUGE-L above which a new "
                                                        "text is a near-duplicate.")] = 0.7,
    demos: Annotated[int | None, typer.Option(help="Examples shown per request (self-instruct 8, gap-fill 4).")] = None,
    max_requests: Annotated[int | None, typer.Option(help="self-instruct, gap-fill: generation requests at "
                                                          "most.")] = None,
    classify: Annotated[bool, typer.Option(help="self-instruct: identify classification tasks.")] = True,
    max_instances: Annotated[int, typer.Option(help="self-instruct: instances per task at most.")] = 5,
    domain: Annotated[str | None, typer.Option(help="self-instruct: domain of the new rows.")] = None,
    k: Annotated[int, typer.Option("-k", help="rejection: samples per prompt.")] = 8,
    reward: Annotated[str, typer.Option(help="rejection: verifier (math, exact, format, code or "
                                             "module:function).")] = "math",
    accept_threshold: Annotated[float, typer.Option(help="rejection: reward at or above which a sample is "
                                                         "accepted.")] = 1.0,
    dedup: Annotated[str, typer.Option(help="rejection: equations (RFT), text or exact.")] = "equations",
    max_per_prompt: Annotated[int | None, typer.Option(help="rejection: kept samples per prompt at most.")] = None,
    rationalize: Annotated[bool, typer.Option(help="rejection: STaR rationalization of failed prompts.")] = False,
    prompt_format: Annotated[str, typer.Option(help="rejection: how a text prompt is shown, with "
                                                    "{prompt}.")] = "{prompt}",
    model_key: Annotated[str | None, typer.Option(help="Prompt-ledger model key (default: the generator's "
                                                       "hash; gap-fill: the key with most stats).")] = None,
    by: Annotated[str, typer.Option(help="gap-fill: domain or difficulty.")] = "domain",
    target: Annotated[list[str] | None, typer.Option(help="gap-fill: GROUP=WEIGHT target shares (default "
                                                          "equal).")] = None,
    bands: Annotated[str | None, typer.Option(help="gap-fill --by difficulty: pass-rate band edges, "
                                                   "e.g. 0,0.1,0.9,1.")] = None,
    responses: Annotated[bool | None, typer.Option(help="gap-fill: also generate responses (default: when the "
                                                        "source has them).")] = None,
    select: Annotated[str | None, typer.Option(help="gap-fill: selectors for the candidates (default: the "
                                                    "source's own selection steps; none to skip).")] = None,
    select_model: Annotated[str | None, typer.Option(help="gap-fill: model for those selectors.")] = None,
    select_budget: Annotated[str | None, typer.Option(help="gap-fill: budget for the last ranking selector.")] = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Synthesize data with an open-weight model; every row records where it came from.

    Generations are cached in the workspace: rerunning an interrupted command continues
    where it stopped and never generates a finished request again.

    Examples:
      curate synth --recipe self-instruct --seeds seed_tasks.jsonl --model ./Qwen2.5-0.5B-Instruct -n 200
      curate synth --recipe self-instruct --seeds seed_tasks.jsonl --model Qwen/Qwen2.5-7B-Instruct \\
          --backend openai --base-url http://localhost:8000/v1
      curate synth --recipe rejection --dataset gsm8k --model ./my-sft -k 8 --reward math -n 1000
      curate synth --recipe gap-fill --dataset pool --model ./my-model --by domain -n 500
    """
    from curate.lm.backends import BackendOptions
    from curate.synth.runner import (RECIPES, SynthJob, synthesize_gap_fill, synthesize_rejection,
                                     synthesize_self_instruct)

    if recipe not in RECIPES:
        raise BadUsage(f"--recipe {recipe!r} is not a recipe", hint="recipes: " + ", ".join(RECIPES))
    ws = Workspace.open(workspace)
    options = BackendOptions(template=template, dtype=dtype, device=device, batch_size=batch_size,
                             tensor_parallel_size=tensor_parallel_size, revision=revision, base_url=base_url,
                             api_key_env=api_key_env, endpoint=endpoint, concurrency=concurrency, timeout=timeout,
                             max_retries=max_retries, model_cache=str(ws.models_dir))
    job = SynthJob(recipe=recipe, model=model, backend=backend, options=options, name=name, license=license,
                   generator_license=generator_license, source_license=seeds_license, seed=seed)
    sampling = {key: value for key, value in (("temperature", temperature), ("top_p", top_p),
                                              ("max_new_tokens", max_new_tokens)) if value is not None}
    shown = {"demos": demos} if demos is not None else {}  # the recipes' defaults differ
    selection = None
    with ui.progress(f"synth {recipe}", quiet=quiet) as update:
        progress = lambda stage, done, total: update(done, total=total, description=f"{recipe}: {stage}",
                                                     unit=SYNTH_UNITS.get(stage, "examples"))
        if recipe == "self-instruct":
            from curate.synth.self_instruct import SelfInstructConfig

            if seeds is None:
                raise BadUsage("--recipe self-instruct needs --seeds FILE", hint="a JSON lines file of seed tasks")
            extra = dict(shown)
            if max_new_tokens is not None:
                extra["instance_max_new_tokens"] = max_new_tokens
            settings = SelfInstructConfig(num_instructions=n if n is not None else 200, rouge_threshold=rouge_threshold,
                                          max_requests=max_requests, classify=classify, max_instances=max_instances,
                                          domain=domain, **extra, **sampling)
            result = synthesize_self_instruct(ws, job, seeds, settings, progress, _warn)
        elif recipe == "rejection":
            from curate.synth.rejection import RejectionConfig

            if dataset is None:
                raise BadUsage("--recipe rejection needs --dataset NAME", hint="ingest the prompts first")
            settings = RejectionConfig(k=k, reward=reward, accept_threshold=accept_threshold, limit=n, dedup=dedup,
                                       max_per_prompt=max_per_prompt, rationalize=rationalize,
                                       prompt_format=prompt_format, model_key=model_key, **sampling)
            result = synthesize_rejection(ws, job, dataset, settings, progress, _warn)
        else:
            from curate.synth.gap_fill import GapFillConfig
            from curate.synth.gaps import parse_bands

            if dataset is None:
                raise BadUsage("--recipe gap-fill needs --dataset NAME")
            settings = GapFillConfig(n=n if n is not None else 100, by=by, targets=_targets(target),
                                     bands=parse_bands(bands), model_key=model_key, responses=responses,
                                     rouge_threshold=rouge_threshold, max_requests=max_requests, select=select,
                                     select_model=select_model, select_budget=select_budget, **shown, **sampling)
            result, selection = synthesize_gap_fill(ws, job, dataset, settings, progress, _warn)
    final = selection.version if selection is not None else result.version
    if quiet:
        ui.out.print(final.ref)
        return
    items = {"recipe": recipe, "model": model, "backend": backend, "rows": ui.human(result.rows),
             "license": result.version.license, "generator license warning": result.license_warning,
             "requests (prompts)": ui.human(result.prompts_requested), "from cache": ui.human(result.cache_hits),
             "generated now": ui.human(result.generated), "dropped": json.dumps(result.drop_counts),
             "seconds": result.seconds}
    if recipe == "rejection":
        items["accepted / attempted"] = f"{result.stats['accepted']:,} / {result.stats['attempted']:,}"
        items["prompts with an accepted sample"] = f"{result.stats['prompts_with_accepted']:,} / " \
                                                   f"{result.stats['prompts']:,}"
        items["ledger model key"] = result.stats["model_key"]
    if selection is not None:
        items["candidates"] = result.version.ref
        items["selected"] = f"{selection.version.ref} ({selection.version.rows:,} rows)"
    ui.out.print(ui.key_values(f"synthesized {final.ref}", items))


def register(app: typer.Typer) -> None:
    app.command("synth")(synth_cmd)
