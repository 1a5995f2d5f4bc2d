"""RL commands: `curate rollouts` (fill the ledger), `curate curriculum`, `curate mix`, `curate loop`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from curate.catalog.versions import resolve
from curate.cli import ui
from curate.cli.options import (BaseUrlOpt, BudgetOpt, ConfigOpt, DebugOpt, DynamicSamplingOpt, FilterOnOpt,
                                GroupSizeOpt, JsonOpt, LossTypeOpt, LrOpt, MaskTruncatedOpt, MaxCompletionOpt,
                                MaxPromptOpt, MaxRefillsOpt, ModelKeyOpt, ModelOpt, PodsOpt, QuietOpt, ResumeOpt,
                                RewardOpt, RewardWeightOpt, SeedOpt, SuccessThresholdOpt, TemperatureOpt, TemplateOpt,
                                TopPOpt, WaitOpt, WorkspaceOpt, command, given, model_option, open_workspace,
                                out_option, param_option, parse_key_values, strategy_option)


def rollouts_cmd(
    ref: Annotated[str, typer.Argument(help="Prompt set: NAME or NAME@vN.")],
    model: ModelOpt,
    num_generations: GroupSizeOpt = None,
    reward: RewardOpt = None,
    reward_weight: RewardWeightOpt = None,
    success_threshold: SuccessThresholdOpt = None,
    refresh: Annotated[bool | None, typer.Option("--refresh", help="Sample every prompt again (a new round), even "
                                                                   "those already sampled.")] = None,
    max_completion_length: MaxCompletionOpt = None,
    max_prompt_length: Annotated[int | None, typer.Option("--max-prompt-length", help="Prompts longer than this many "
                                                          "tokens are left out (and counted); at most the context "
                                                          "minus --max-completion-length.")] = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    prompts_per_batch: Annotated[int | None, typer.Option(help="Prompts generated (and recorded) together.")] = None,
    model_key: ModelKeyOpt = None,
    template: TemplateOpt = None,
    backend: Annotated[str, typer.Option(help="hf (local weights) or openai (servers: --model names the served "
                                              "model; the ledger key is served:NAME).")] = "hf",
    base_url: BaseUrlOpt = None,
    concurrency: Annotated[int, typer.Option(help="openai: requests in flight per server at most.")] = 8,
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = None,
    wait: WaitOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Fill the prompt ledger: G rollouts per prompt, scored, recorded per prompt, model and reward.

    Resumable: prompts already sampled for this model and reward are skipped (unless --refresh),
    so an interrupted run continues where it stopped; another --reward is a separate ledger entry.

    Examples:
      curate rollouts gsm8k --model ./sft-model -G 8 --reward math
      curate rollouts gsm8k --model ./sft-model -G 8 --reward math --reward format --reward-weight 1 --reward-weight 0.2
      curate rollouts mbpp --model Qwen/Qwen2.5-0.5B-Instruct -G 4 --reward code --refresh
      curate rollouts gsm8k --model Qwen/Qwen2.5-7B-Instruct --backend openai \
          --base-url http://node1:8000/v1 --base-url http://node2:8000/v1 -G 16
    """
    from curate.train.collect import CollectConfig, collect_rollouts

    ws = open_workspace(workspace, wait)
    version = resolve(ws, ref)
    from curate.train.proxy import resolve_model

    settings = CollectConfig(**given(num_generations=num_generations, max_completion_length=max_completion_length,
                                     max_prompt_length=max_prompt_length, temperature=temperature, top_p=top_p,
                                     prompts_per_batch=prompts_per_batch, template=template, refresh=refresh,
                                     model_key=model_key, reward_weights=tuple(reward_weight or ()) or None,
                                     success_threshold=success_threshold),
                             seed=seed)
    server = _server_backend(backend, model, base_url, settings.template, concurrency)
    with ui.progress(f"rollouts of {version.ref}", quiet=quiet, unit="prompts") as update:
        report = collect_rollouts(ws, version, model if server else resolve_model(ws, version, model),
                                  config=settings, progress=lambda done, total: update(done, total=total),
                                  backend=server, **given(reward=reward))
    if as_json:
        ui.out.print_json(json.dumps(report, default=str))
    elif quiet:
        ui.out.print(f"{report['rollouts_written']}")
    else:
        _print_rollouts(version.ref, model, report)
    if report["prompts_too_long"] and not quiet:
        ui.err.print(Text("note: ", style="yellow") + Text(_too_long_note(report)), soft_wrap=True)


def _server_backend(backend: str, model: str, base_url: list[str] | None, template: str, concurrency: int):
    """None for hf (collect_rollouts loads the weights); the openai backend over every --base-url."""
    from curate.errors import BadUsage

    if backend == "hf":
        if base_url:
            raise BadUsage("--base-url is for --backend openai", hint="add --backend openai, or drop --base-url")
        return None
    if backend != "openai":
        raise BadUsage(f"--backend {backend!r} is not a rollouts backend", hint="--backend hf or --backend openai")
    if not base_url:
        raise BadUsage("--backend openai needs --base-url", hint="e.g. --base-url http://localhost:8000/v1 (repeat "
                                                                 "it for several servers)")
    from curate.lm.backends import make_backend

    return make_backend("openai", model, base_url=tuple(base_url), template=template, concurrency=concurrency)


def _too_long_note(report: dict) -> str:
    limit, count, total = report["max_prompt_length"], report["prompts_too_long"], report["prompts_in_dataset"]
    if report["prompt_limit_set_by"] == "max_prompt_length":
        fix = "raise --max-prompt-length"
    else:
        fix = (f"the model's context ({report['context_length']} tokens) minus --max-completion-length sets it: "
               "lower --max-completion-length")
    return f"{count:,} of {total:,} prompts are longer than {limit:,} tokens and were left out; to keep them, {fix}"


def _print_rollouts(ref: str, model: str, report: dict) -> None:
    ui.out.print(ui.key_values(f"rollouts of {ref}", {
        "model": model, "ledger key (model#reward)": report["model_key"], "round": report["round"],
        "prompts": f"{report['prompts_in_dataset']:,}",
        "too long (left out)": f"{report['prompts_too_long']:,} (over {report['max_prompt_length']:,} tokens)",
        "already sampled (skipped)": f"{report['skipped_already_sampled']:,}",
        "prompts sampled now": f"{report['prompts_sampled']:,}", "rollouts written": f"{report['rollouts_written']:,}",
        "mean reward": "-" if report["reward_mean"] is None else f"{report['reward_mean']:.3f}",
        "groups with mixed rewards": report["mixed_groups"], "groups with equal rewards": report["zero_variance_groups"],
        "rewards that were None": report["reward_nones"], "seconds": report["seconds"],
    }))


def loop_cmd(
    ref: Annotated[str, typer.Argument(help="Prompt set: NAME or NAME@vN.")],
    model: ModelOpt,
    rounds: Annotated[int | None, typer.Option(help="Rounds of select, roll out, train, evaluate.")] = None,
    strategy: Annotated[str | None, strategy_option("The curriculum that picks each round's prompts: thompson, band, "
                                                    "greso, adarft or uniform (the difficulty strategy's modes).")] = None,
    param: Annotated[list[str] | None, param_option("The curriculum's parameters as NAME=VALUE, e.g. lo=0.2 hi=0.8 "
                                                    "(band), target=0.5 (thompson); docs/rl.md lists them.")] = None,
    out: Annotated[Path | None, out_option("Run folder (default: WS/runs/loop-NAME-STRATEGY).")] = None,
    reward: RewardOpt = None,
    reward_weight: RewardWeightOpt = None,
    resume: ResumeOpt = False,
    prompts_per_round: Annotated[int | None, typer.Option(help="Prompts per GRPO step.")] = None,
    steps_per_round: Annotated[int | None, typer.Option(help="GRPO steps per round.")] = None,
    num_generations: GroupSizeOpt = None,
    max_completion_length: MaxCompletionOpt = None,
    lr: LrOpt = None,
    loss_type: LossTypeOpt = None,
    dynamic_sampling: Annotated[bool | None, typer.Option("--dynamic-sampling/--no-dynamic-sampling",
                                                          help="Drop zero-variance groups and refill (DAPO; default: "
                                                               "on for greso).")] = None,
    max_refills: MaxRefillsOpt = None,
    filter_on: FilterOnOpt = None,
    success_threshold: SuccessThresholdOpt = None,
    pick_every: Annotated[str | None, typer.Option("--pick-every", help="When the curriculum picks prompts: every GRPO "
                                                   "step (as MoPPS, GRESO and AdaRFT do) or once per round.")] = None,
    pods_m: PodsOpt = None,
    mask_truncated: MaskTruncatedOpt = None,
    eval_size: Annotated[int | None, typer.Option(help="Held-out prompts evaluated each round.")] = None,
    lo: Annotated[float | None, typer.Option(hidden=True, help="= --param lo=.")] = None,
    hi: Annotated[float | None, typer.Option(hidden=True, help="= --param hi=.")] = None,
    target: Annotated[float | None, typer.Option(hidden=True, help="= --param target=.")] = None,
    model_key: ModelKeyOpt = None,
    template: TemplateOpt = None,
    workspace: WorkspaceOpt = None,
    wait: WaitOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The closed loop: the curriculum picks prompts, GRPO trains, the ledger learns; resumable.

    Each round the curriculum picks prompts from the ledger, GRPO trains on them (every
    rollout goes to the ledger), the held-out split is evaluated and a metrics row is
    appended to OUT/metrics.jsonl. After a crash, rerun with --resume.

    Examples:
      curate loop gsm8k --model ./sft-model --rounds 10 --strategy thompson
      curate loop gsm8k --model ./sft-model --strategy band --param lo=0.2 --param hi=0.8
      curate loop gsm8k --model ./sft-model --strategy greso --out runs/greso --resume
      curate loop gsm8k --model ./sft-model --strategy thompson --param decay=0.9 --pick-every step
      curate loop gsm8k --model ./sft-model --strategy adarft --param reference=base
    """
    from curate.loop import LoopConfig, run_loop
    from curate.selectors.rl.difficulty import CurriculumParams

    ws = open_workspace(workspace, wait)
    params = {**{k: str(v) for k, v in given(lo=lo, hi=hi, target=target).items()}, **parse_key_values(param, "--param")}
    settings = LoopConfig(**given(rounds=rounds, strategy=strategy, prompts_per_round=prompts_per_round,
                                  steps_per_round=steps_per_round, num_generations=num_generations,
                                  max_completion_length=max_completion_length, lr=lr, loss_type=loss_type,
                                  dynamic_sampling=dynamic_sampling, max_refills=max_refills, pods_m=pods_m,
                                  filter_on=filter_on, success_threshold=success_threshold, pick_every=pick_every,
                                  mask_truncated_completions=mask_truncated, eval_size=eval_size, model_key=model_key,
                                  template=template, reward_weights=tuple(reward_weight or ()) or None),
                          curriculum=CurriculumParams().with_params(params), seed=seed)
    name = resolve(ws, ref).name
    folder = out or ws.root / "runs" / f"loop-{name}-{settings.strategy}"
    say = (lambda _: None) if quiet else ui.say
    report = run_loop(ws, ref, model, folder, settings, resume=resume, say=say, **given(reward=reward))
    if quiet:
        ui.out.print(str(report.out_dir))
        return
    columns = ["round", "prompts", "rollouts", "train reward", "zero-std groups", "held-out reward", "seconds"]
    rows = [[r["round"], r["prompts"], r["rollouts"], _fmt(r["train_reward"]), _fmt(r["frac_reward_zero_std"]),
             _fmt(r["eval_reward"]), r["seconds"]] for r in report.rows]
    ui.out.print(ui.table(f"loop {ref} ({settings.strategy}); held-out reward before: {_fmt(report.eval_before)}",
                          columns, rows))
    key = report.state.get("ledger_key", report.state.get("model_key"))
    ui.out.print(f"run folder: {report.out_dir}  ·  model: {report.model}  ·  ledger key: {key}")


def curriculum_cmd(
    ref: Annotated[str, typer.Argument(help="Prompt set: NAME or NAME@vN (with rollouts in the ledger).")],
    stages: Annotated[int | None, typer.Option("--stages", help="Number of stages.")] = None,
    layout: Annotated[str | None, typer.Option(help="easy-to-hard (equal-size stages by pass rate) or bands.")] = None,
    bands: Annotated[str | None, typer.Option(help="bands: LO-HI per stage, easiest first, e.g. 0.7-1,0.4-0.7,0.1-0.4.")] = None,
    model_key: ModelKeyOpt = None,
    out: Annotated[str | None, out_option("Prefix of the stages' dataset names (default: NAME-curriculum).")] = None,
    export: Annotated[Path | None, typer.Option(help="Also write each stage to DIR as Parquet (prompt, answer) "
                                                     "for TRL or verl.")] = None,
    workspace: WorkspaceOpt = None,
    wait: WaitOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Ordered curriculum stages from the ledger's pass rates; each stage is a dataset version.

    Examples:
      curate curriculum gsm8k --stages 3
      curate curriculum gsm8k --layout bands --bands 0.7-1,0.3-0.7,0.05-0.3 --export stages/
    """
    from curate.selectors.rl.curriculum import build_curriculum, parse_bands

    ws = open_workspace(workspace, wait)
    report = build_curriculum(ws, ref, bands=parse_bands(bands) if bands else None, model_key=model_key, out=out,
                              export_dir=export, seed=seed, **given(stages=stages, layout=layout))
    if quiet:
        for stage in report.stages:
            ui.out.print(stage.version.ref)
        return
    rows = [[s.index, s.version.ref, f"{s.version.rows:,}", f"{s.pass_rate_min:.2f}-{s.pass_rate_max:.2f}",
             s.exported or ""] for s in report.stages]
    ui.out.print(ui.table(f"curriculum of {report.source.ref} ({report.layout}, model key {report.model_key})",
                          ["stage", "version", "prompts", "pass rate", "exported"], rows))
    notes = [f"{report.unseen:,} prompts have no rollouts yet (run `curate rollouts`)"] if report.unseen else []
    if report.unplaced:
        notes.append(f"{report.unplaced:,} prompts fall outside every band")
    if report.empty_stages:
        notes.append("empty stages (not written): " + ", ".join(map(str, report.empty_stages)))
    for note in notes:
        ui.note("note", note)


def mix_cmd(
    ref: Annotated[str, typer.Argument(help="Dataset: NAME or NAME@vN.")],
    budget: BudgetOpt,
    method: Annotated[str | None, typer.Option(help="natural, static, doremi or progress (default: static with "
                                                    "--weights, natural without).")] = None,
    weights: Annotated[str | None, typer.Option(help="static: DOMAIN=WEIGHT,... e.g. math=0.6,code=0.4.")] = None,
    clusters: Annotated[int | None, typer.Option(help="Cluster into K domains with k-means (the default when there "
                                                      "is no domain column).")] = None,
    model: Annotated[str | None, model_option("Embedding model for clustering; `proxy`: a small model trained "
                                              "(once, cached) on the dataset itself.")] = None,
    model_key: ModelKeyOpt = None,
    doremi_steps: Annotated[int | None, typer.Option(help="doremi: proxy training steps.")] = None,
    redistribute: Annotated[bool | None, typer.Option("--redistribute", help="static: when a domain has fewer rows "
                                                      "than its share, give the rest to the other weighted domains "
                                                      "(by default the mix is refused).")] = None,
    out: Annotated[str | None, out_option("Name of the new dataset (default: NAME-mix).")] = None,
    workspace: WorkspaceOpt = None,
    wait: WaitOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Domain weights (static, DoReMi or learning progress) and a mixed dataset of a given size.

    Examples:
      curate mix pool --budget 10000 --method static --weights math=0.6,code=0.4
      curate mix pool --budget 10% --method doremi
      curate mix prompts --budget 2000 --method progress
    """
    from curate.selectors.pipeline import run_select

    ws = open_workspace(workspace, wait)
    method = method or ("static" if weights else "natural")
    params = {"method": method, **given(weights=weights, clusters=clusters, doremi_steps=doremi_steps,
                                        model_key=model_key, redistribute=redistribute)}
    name = resolve(ws, ref).name
    with ui.progress("mixing", quiet=quiet) as update:
        report = run_select(ws, ref, "mixing", budget=budget, out=out or f"{name}-mix", params=params, seed=seed,
                            progress=lambda what, done, total: update(done, total=total, description=what,
                                                                      unit=ui.unit_of(what)), **given(model=model))
    if quiet:
        ui.out.print(report.version.ref)
        return
    stats = report.steps[-1].stats
    rows = [[d, f"{w:.4f}", f"{stats['available'][d]:,}", f"{stats['taken'][d]:,}", f"{stats['shares'][d]:.4f}"]
            for d, w in stats["weights"].items()]
    ui.out.print(ui.table(f"{method} weights over {len(rows)} domains ({stats['domain_source']}) -> {report.version.ref}",
                          ["domain", "weight", "available", "taken", "share"], rows))
    off = [d for d, w in stats["weights"].items() if abs(stats["shares"][d] - w) * report.version.rows > 1]
    if off:
        ui.err.print(f"note: {', '.join(off)} could not get their weight's share (too few rows); "
                     "the others took their place by weight (the share column is what the mix holds)")


def _fmt(value) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    app.command("rollouts", cls=command("curate.train.collect:CollectConfig", "curate.train.collect:collect_rollouts",
                                        reward_weight="reward_weights"))(rollouts_cmd)
    app.command("curriculum", cls=command("curate.selectors.rl.curriculum:build_curriculum"))(curriculum_cmd)
    app.command("mix", cls=command("curate.selectors.mix.mixing:MixingSelector", "curate.selectors.pipeline:run_select"))(
        mix_cmd)
    app.command("loop", cls=command("curate.loop:LoopConfig", "curate.loop:run_loop", reward_weight="reward_weights",
                                    mask_truncated="mask_truncated_completions"))(loop_cmd)
