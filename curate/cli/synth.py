"""`curate synth self-instruct | rejection | gap-fill`: synthetic data with open-weight models.

Each recipe is a subcommand with its own options; the generator's options (model, backend,
sampling, licenses, output name) are declared once (`_generator`) and added to every recipe
by `recipe_command`. The older form `curate synth --recipe NAME ...` still parses (`SynthGroup`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from curate.catalog.workspace import Workspace
from curate.cli import ui
from curate.cli.options import (ApiKeyEnvOpt, BaseUrlOpt, BudgetOpt, ConcurrencyOpt, ConfigOpt, DebugOpt, DeviceOpt,
                                DtypeOpt, EndpointOpt, Group, GroupSizeOpt, MaxCompletionOpt, MaxRetriesOpt,
                                ModelKeyOpt, QuietOpt, RewardOpt, ScorerModelOpt, SeedOpt, TemperatureOpt, TemplateOpt,
                                TimeoutOpt, TopPOpt, WorkspaceOpt, backend_option, command, given, model_option,
                                out_option, parse_key_values, strategy_option)
from curate.errors import BadUsage

SYNTH_UNITS = {"instructions": "instructions", "classification": "tasks", "instances": "tasks",
               "rejection sampling": "prompts"}  # what each recipe stage counts; gap-fill counts examples


class SynthGroup(Group):
    """`curate synth RECIPE ...`, and the older `curate synth --recipe RECIPE ...`."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, legacy_recipe(args, list(self.commands)))

    def resolve_command(self, ctx, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            raise typer.BadParameter(f"{args[0]!r} is not a recipe; recipes: {', '.join(self.commands)}", ctx=ctx,
                                     param_hint="RECIPE")
        return super().resolve_command(ctx, args)


def legacy_recipe(args: list[str], recipes: list[str]) -> list[str]:
    """`--recipe NAME` (or `--recipe=NAME`) before any subcommand: NAME becomes the subcommand. (Its old
    short form `-r` is not accepted: `-r` is `--reward`.)"""
    if not args or args[0] in recipes:
        return args
    for i, arg in enumerate(args):
        if arg == "--recipe" and i + 1 < len(args):
            return [args[i + 1], *args[:i], *args[i + 2:]]
        if arg.startswith("--recipe="):
            return [arg.partition("=")[2], *args[:i], *args[i + 1:]]
    return args


synth_app = typer.Typer(help="Synthesize data with an open-weight model; every row records where it came from.",
                        no_args_is_help=True, cls=SynthGroup)


@dataclass
class Generator:
    """The options every recipe shares, as the command line gave them (None: the default)."""

    model: str
    backend: str | None
    base_url: str | None
    api_key_env: str | None
    endpoint: str | None
    concurrency: int | None
    timeout: float | None
    max_retries: int | None
    template: str | None
    dtype: str | None
    device: str | None
    batch_size: int | None
    tensor_parallel_size: int | None
    revision: str | None
    temperature: float | None
    top_p: float | None
    max_completion_length: int | None
    out: str | None
    license: str | None
    generator_license: str | None
    workspace: Any
    config: Any
    seed: int
    quiet: bool
    debug: bool

    def job(self, recipe: str, ws: Workspace, source_license: str | None = None):
        from curate.lm.backends import BackendOptions
        from curate.synth.runner import SynthJob

        options = BackendOptions(**given(template=self.template, dtype=self.dtype, device=self.device,
                                         batch_size=self.batch_size, tensor_parallel_size=self.tensor_parallel_size,
                                         revision=self.revision, base_url=self.base_url, api_key_env=self.api_key_env,
                                         endpoint=self.endpoint, concurrency=self.concurrency, timeout=self.timeout,
                                         max_retries=self.max_retries), model_cache=str(ws.models_dir))
        return SynthJob(recipe=recipe, model=self.model, options=options, name=self.out, license=self.license,
                        generator_license=self.generator_license, source_license=source_license, seed=self.seed,
                        **given(backend=self.backend))

    def sampling(self) -> dict[str, Any]:
        """Sampling settings the user gave; the recipe's own defaults hold for the rest."""
        return given(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_completion_length)


def _generator(
    model: Annotated[str, model_option("The generator: a model folder or hub id (hf, vllm), or the model name the "
                                       "server serves (openai).")],
    backend: Annotated[str | None, backend_option("hf (transformers), vllm, or openai (any OpenAI-compatible "
                                                  "server: vLLM serve, SGLang, llama.cpp).")] = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    endpoint: EndpointOpt = None,
    concurrency: ConcurrencyOpt = None,
    timeout: TimeoutOpt = None,
    max_retries: MaxRetriesOpt = None,
    template: TemplateOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    batch_size: Annotated[int | None, typer.Option(help="hf: sequences generated together.")] = None,
    tensor_parallel_size: Annotated[int | None, typer.Option(help="vllm: GPUs per model.")] = None,
    revision: Annotated[str | None, typer.Option(help="Model revision (recorded; vllm loads it).")] = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    max_completion_length: MaxCompletionOpt = None,
    out: Annotated[str | None, out_option("Name of the new dataset (default: the recipe's name, or SOURCE-RECIPE).")] = None,
    license: Annotated[str | None, typer.Option(help="License of the new dataset (default: source and generator "
                                                     "terms).")] = None,
    generator_license: Annotated[str | None, typer.Option(help="The generator's license id, when it cannot be "
                                                               "detected (e.g. llama3.1, gemma, apache-2.0).")] = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The options every recipe takes (this function is their declaration; `Generator` holds their values)."""


GENERATOR_OPTIONS = inspect.signature(_generator, eval_str=True).parameters


def recipe_command(func):
    """The typer command for a recipe `func(gen: Generator, **its own options)`: its options, then the generator's."""
    own = [p for name, p in inspect.signature(func, eval_str=True).parameters.items() if name != "gen"]

    @functools.wraps(func)
    def run(**values: Any) -> None:
        gen = Generator(**{name: values.pop(name) for name in GENERATOR_OPTIONS})
        func(gen, **values)

    keyword = inspect.Parameter.KEYWORD_ONLY  # the generator's required --model may follow defaulted options
    run.__signature__ = inspect.Signature([p.replace(kind=keyword) for p in (*own, *GENERATOR_OPTIONS.values())])
    return run


def _source(ref: str | None, dataset: str | None, recipe: str) -> str:
    if ref and dataset and ref != dataset:
        raise BadUsage(f"two source datasets: {ref} and --dataset {dataset}", hint="name the source once")
    if not (ref or dataset):
        raise BadUsage(f"`curate synth {recipe}` needs the source dataset", hint=f"`curate synth {recipe} NAME --model M`")
    return ref or dataset


@synth_app.command("self-instruct", cls=command("curate.synth.self_instruct:SelfInstructConfig",
                                                "curate.lm.backends:BackendOptions", "curate.synth.runner:SynthJob",
                                                count="num_instructions", max_completion_length="max_new_tokens"))
@recipe_command
def self_instruct_cmd(
    gen: Generator,
    seeds: Annotated[str | None, typer.Argument(help="Seed tasks: JSON lines or a JSON array (instruction, "
                                                     "instances, is_classification; or Alpaca's instruction, "
                                                     "input, output), any file `curate ingest` reads, or a "
                                                     "dataset NAME@vN.", show_default=False)] = None,
    count: Annotated[int | None, typer.Option("--count", "-n", help="New instructions to keep.")] = None,
    seeds_license: Annotated[str | None, typer.Option(help="License of the seed tasks (recorded; e.g. apache-2.0, "
                                                           "cc-by-nc-4.0).")] = None,
    rouge_threshold: Annotated[float | None, typer.Option(help="ROUGE-L above which a new instruction is a "
                                                               "near-duplicate.")] = None,
    demos: Annotated[int | None, typer.Option(help="Instructions shown per request.")] = None,
    max_requests: Annotated[int | None, typer.Option(help="Generation requests at most (default: 20 per "
                                                          "instruction wanted).")] = None,
    classify: Annotated[bool | None, typer.Option("--classify/--no-classify", help="Identify classification "
                                                                                   "tasks.")] = None,
    max_instances: Annotated[int | None, typer.Option(help="Instances per task at most.")] = None,
    domain: Annotated[str | None, typer.Option(help="Set this domain on every new row.")] = None,
    seeds_option: Annotated[str | None, typer.Option("--seeds", hidden=True, help="= SEEDS.")] = None,
) -> None:
    """Self-Instruct (Wang et al. 2023): new instructions and instances from seed tasks.

    Generations are cached in the workspace: rerunning an interrupted command continues
    where it stopped and never generates a finished request again.

    Examples:
      curate synth self-instruct seed_tasks.jsonl --model ./Qwen2.5-0.5B-Instruct -n 200
      curate synth self-instruct seed_tasks.jsonl --model Qwen/Qwen2.5-7B-Instruct \\
          --backend openai --base-url http://localhost:8000/v1
    """
    from curate.synth.runner import synthesize_self_instruct
    from curate.synth.self_instruct import SelfInstructConfig

    seed_file = seeds or seeds_option
    if seed_file is None:
        raise BadUsage("`curate synth self-instruct` needs the seed tasks: a file or a dataset NAME@vN",
                       hint="`curate synth self-instruct SEEDS.jsonl --model M`")
    sampling = gen.sampling()
    if "max_new_tokens" in sampling:
        sampling["instance_max_new_tokens"] = sampling["max_new_tokens"]
    settings = SelfInstructConfig(**given(num_instructions=count, rouge_threshold=rouge_threshold, demos=demos,
                                          max_requests=max_requests, classify=classify, max_instances=max_instances,
                                          domain=domain), **sampling)
    ws = Workspace.open(gen.workspace)
    job = gen.job("self-instruct", ws, source_license=seeds_license)
    with _progress("self-instruct", gen.quiet) as progress:
        result = synthesize_self_instruct(ws, job, seed_file, settings, progress, _warn)
    _report("self-instruct", gen, job, result)


@synth_app.command("rejection", cls=command("curate.synth.rejection:RejectionConfig",
                                            "curate.lm.backends:BackendOptions", "curate.synth.runner:SynthJob",
                                            count="limit", num_generations="k", max_completion_length="max_new_tokens"))
@recipe_command
def rejection_cmd(
    gen: Generator,
    ref: Annotated[str | None, typer.Argument(help="The prompts: NAME or NAME@vN.", show_default=False)] = None,
    num_generations: GroupSizeOpt = None,
    reward: RewardOpt = None,
    accept_threshold: Annotated[float | None, typer.Option(help="Reward at or above which a sample is "
                                                                "accepted.")] = None,
    count: Annotated[int | None, typer.Option("--count", "-n", help="Prompts to sample (a seeded random sample; "
                                                                    "default: all).")] = None,
    dedup: Annotated[str | None, typer.Option(help="equations (RFT), text or exact.")] = None,
    max_per_prompt: Annotated[int | None, typer.Option(help="Kept samples per prompt at most.")] = None,
    rationalize: Annotated[bool | None, typer.Option("--rationalize/--no-rationalize",
                                                     help="STaR rationalization of failed prompts.")] = None,
    prompt_format: Annotated[str | None, typer.Option(help="How a text prompt is shown, with {prompt}.")] = None,
    model_key: ModelKeyOpt = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", hidden=True, help="= REF.")] = None,
) -> None:
    """Rejection sampling (RFT, STaR): sample each prompt G times and keep what the reward accepts.

    Examples:
      curate synth rejection gsm8k --model ./my-sft -G 8 --reward math -n 1000
      curate synth rejection gsm8k --model ./my-sft --reward math --rationalize
    """
    from curate.synth.rejection import RejectionConfig
    from curate.synth.runner import synthesize_rejection

    rewards = tuple(reward or ())
    settings = RejectionConfig(**given(k=num_generations, reward=(rewards[0] if len(rewards) == 1 else rewards) or None,
                                       accept_threshold=accept_threshold, limit=count, dedup=dedup,
                                       max_per_prompt=max_per_prompt, rationalize=rationalize,
                                       prompt_format=prompt_format, model_key=model_key), **gen.sampling())
    source = _source(ref, dataset, "rejection")
    ws = Workspace.open(gen.workspace)
    job = gen.job("rejection", ws)
    with _progress("rejection", gen.quiet) as progress:
        result = synthesize_rejection(ws, job, source, settings, progress, _warn)
    _report("rejection", gen, job, result)


@synth_app.command("gap-fill", cls=command("curate.synth.gap_fill:GapFillConfig",
                                           "curate.lm.backends:BackendOptions", "curate.synth.runner:SynthJob",
                                           count="n", strategy="select", scorer_model="select_model",
                                           budget="select_budget", max_completion_length="max_new_tokens"))
@recipe_command
def gap_fill_cmd(
    gen: Generator,
    ref: Annotated[str | None, typer.Argument(help="The dataset to fill: NAME or NAME@vN.", show_default=False)] = None,
    count: Annotated[int | None, typer.Option("--count", "-n", help="New examples to make.")] = None,
    by: Annotated[str | None, typer.Option(help="Groups to fill: domain or difficulty.")] = None,
    weights: Annotated[list[str] | None, typer.Option("--weights", "--target", help="Target shares as GROUP=WEIGHT "
                                                      "(comma-separated or repeated; default: equal).")] = None,
    bands: Annotated[str | None, typer.Option(help="--by difficulty: pass-rate band edges, e.g. 0,0.1,0.9,1.")] = None,
    model_key: ModelKeyOpt = None,
    responses: Annotated[bool | None, typer.Option("--responses/--no-responses", help="Also generate responses "
                                                   "(default: when the source has them).")] = None,
    rouge_threshold: Annotated[float | None, typer.Option(help="ROUGE-L above which a new text is a "
                                                               "near-duplicate.")] = None,
    demos: Annotated[int | None, typer.Option(help="Examples shown per request.")] = None,
    max_requests: Annotated[int | None, typer.Option(help="Generation requests at most (default: 10 per "
                                                          "example).")] = None,
    strategy: Annotated[str | None, strategy_option("Selectors for the candidates (default: the source's own "
                                                    "selection steps; none to skip).")] = None,
    scorer_model: ScorerModelOpt = None,
    budget: BudgetOpt = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", hidden=True, help="= REF.")] = None,
) -> None:
    """Gap filling: generate examples where the dataset is thin (by domain or by difficulty), then select.

    Examples:
      curate synth gap-fill pool --model ./my-model --by domain -n 500
      curate synth gap-fill prompts --model ./my-model --by difficulty --bands 0,0.1,0.9,1 --weights 0.1-0.9=1
    """
    from curate.synth.gap_fill import GapFillConfig
    from curate.synth.gaps import parse_bands
    from curate.synth.runner import synthesize_gap_fill

    settings = GapFillConfig(**given(n=count, by=by, model_key=model_key, responses=responses,
                                     rouge_threshold=rouge_threshold, demos=demos, max_requests=max_requests,
                                     select=strategy, select_model=scorer_model, select_budget=budget),
                             targets=_weights(weights), bands=parse_bands(bands), **gen.sampling())
    source = _source(ref, dataset, "gap-fill")
    ws = Workspace.open(gen.workspace)
    job = gen.job("gap-fill", ws)
    with _progress("gap-fill", gen.quiet) as progress:
        result, selection = synthesize_gap_fill(ws, job, source, settings, progress, _warn)
    _report("gap-fill", gen, job, result, selection)


def _weights(items: list[str] | None) -> tuple[tuple[str, float], ...]:
    pairs = [part for item in items or [] for part in item.split(",") if part.strip()]
    out = []
    for key, value in parse_key_values(pairs, "--weights").items():
        try:
            out.append((key, float(value)))
        except ValueError:
            raise BadUsage(f"--weights {key}={value}: the weight must be a number") from None
    return tuple(out)


def _warn(message: str) -> None:
    ui.note("warning", message, style="bold yellow")


@contextlib.contextmanager
def _progress(recipe: str, quiet: bool) -> Iterator[Callable[[str, int, int | None], None]]:
    """A progress bar whose update takes (stage, done, total), as the recipes report."""
    with ui.progress(f"synth {recipe}", quiet=quiet) as update:
        yield lambda stage, done, total: update(done, total=total, description=f"{recipe}: {stage}",
                                                unit=SYNTH_UNITS.get(stage, "examples"))


def _report(recipe: str, gen: Generator, job, result, selection=None) -> None:
    final = selection.version if selection is not None else result.version
    if gen.quiet:
        ui.out.print(final.ref)
        return
    items = {"recipe": recipe, "model": gen.model, "backend": job.backend, "rows": ui.human(result.rows),
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
    app.add_typer(synth_app, name="synth")
