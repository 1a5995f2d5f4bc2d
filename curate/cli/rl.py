"""RL commands: `curate rollouts` (fill the ledger), `curate curriculum`, `curate mix`, `curate loop`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.catalog.versions import resolve
from curate.catalog.workspace import Workspace
from curate.cli import ui
from curate.cli.options import ConfigOpt, DebugOpt, QuietOpt, SeedOpt, WorkspaceOpt

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model folder or hub id (`proxy`: the dataset's proxy).")]
RewardOpt = Annotated[str, typer.Option("--reward", "-r", help="math, exact, format, code, or module:function.")]
ModelKeyOpt = Annotated[str | None, typer.Option(help="Ledger key of the policy (default: the model's hash).")]


def rollouts_cmd(
    ref: Annotated[str, typer.Argument(help="Prompt set: NAME or NAME@vN.")],
    model: ModelOpt,
    k: Annotated[int, typer.Option("-k", help="Rollouts per prompt.")] = 8,
    reward: RewardOpt = "math",
    refresh: Annotated[bool, typer.Option(help="Sample every prompt again (a new round), even those already sampled.")] = False,
    max_completion_length: Annotated[int, typer.Option(help="Tokens per completion at most.")] = 256,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    prompts_per_batch: Annotated[int, typer.Option(help="Prompts generated (and recorded) together.")] = 16,
    model_key: ModelKeyOpt = None,
    template: Annotated[str, typer.Option(help="Prompt template: auto, chat or plain.")] = "auto",
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Fill the prompt ledger: k rollouts per prompt, scored, recorded per prompt and model.

    Resumable: prompts already sampled for this model are skipped (unless --refresh), so an
    interrupted run continues where it stopped.

    Examples:
      curate rollouts gsm8k --model ./sft-model -k 8 --reward math
      curate rollouts mbpp --model Qwen/Qwen2.5-0.5B-Instruct -k 4 --reward code --refresh
    """
    from curate.train.collect import CollectConfig, collect_rollouts

    ws = Workspace.open(workspace)
    version = resolve(ws, ref)
    from curate.train.proxy import resolve_model

    settings = CollectConfig(k=k, max_completion_length=max_completion_length, temperature=temperature,
                             prompts_per_batch=prompts_per_batch, template=template, refresh=refresh,
                             model_key=model_key, seed=seed)
    with ui.progress(f"rollouts of {version.ref}", quiet=quiet) as update:
        report = collect_rollouts(ws, version, resolve_model(ws, version, model), reward, settings,
                                  progress=lambda done, total: update(done, total=total))
    if quiet:
        ui.out.print(f"{report['rollouts_written']}")
        return
    ui.out.print(ui.key_values(f"rollouts of {version.ref}", {
        "model": model, "model key": report["model_key"], "round": report["round"],
        "prompts": f"{report['prompts']:,}", "already sampled (skipped)": f"{report['skipped_already_sampled']:,}",
        "prompts sampled now": f"{report['prompts_sampled']:,}", "rollouts written": f"{report['rollouts_written']:,}",
        "mean reward": "-" if report["reward_mean"] is None else f"{report['reward_mean']:.3f}",
        "groups with mixed rewards": report["mixed_groups"], "groups with equal rewards": report["zero_variance_groups"],
        "rewards that were None": report["reward_nones"], "seconds": report["seconds"],
    }))


def loop_cmd(
    ref: Annotated[str, typer.Argument(help="Prompt set: NAME or NAME@vN.")],
    model: ModelOpt,
    rounds: Annotated[int, typer.Option(help="Rounds of select, roll out, train, evaluate.")] = 5,
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="thompson, band, greso, adarft or uniform.")] = "thompson",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: WS/runs/loop-NAME-STRATEGY).")] = None,
    reward: RewardOpt = "math",
    resume: Annotated[bool, typer.Option(help="Continue the loop in --out.")] = False,
    prompts_per_round: Annotated[int, typer.Option(help="Prompts per GRPO step.")] = 16,
    steps_per_round: Annotated[int, typer.Option(help="GRPO steps per round.")] = 2,
    num_generations: Annotated[int, typer.Option("--num-generations", "-g", help="Completions per prompt (G).")] = 8,
    max_completion_length: Annotated[int, typer.Option(help="Tokens per completion at most.")] = 128,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-5,
    loss_type: Annotated[str, typer.Option(help="grpo, bnpo, dr_grpo or dapo.")] = "dapo",
    dynamic_sampling: Annotated[bool | None, typer.Option(help="Drop zero-variance groups and refill (default: on "
                                                              "for greso).")] = None,
    max_refills: Annotated[int, typer.Option(help="Dynamic sampling: extra sampling rounds at most.")] = 2,
    pods_m: Annotated[int | None, typer.Option(help="PODS: train on M of the G completions.")] = None,
    eval_size: Annotated[int, typer.Option(help="Held-out prompts evaluated each round.")] = 32,
    lo: Annotated[float, typer.Option(help="band: lowest pass rate kept.")] = 0.1,
    hi: Annotated[float, typer.Option(help="band: highest pass rate kept.")] = 0.9,
    target: Annotated[float, typer.Option(help="thompson: target pass rate.")] = 0.5,
    model_key: ModelKeyOpt = None,
    template: Annotated[str, typer.Option(help="Prompt template: auto, chat or plain.")] = "auto",
    workspace: WorkspaceOpt = None,
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
      curate loop gsm8k --model ./sft-model --strategy greso --out runs/greso --resume
    """
    from curate.loop import LoopConfig, run_loop

    ws = Workspace.open(workspace)
    settings = LoopConfig(rounds=rounds, strategy=strategy, prompts_per_round=prompts_per_round,
                          steps_per_round=steps_per_round, num_generations=num_generations,
                          max_completion_length=max_completion_length, lr=lr, loss_type=loss_type,
                          dynamic_sampling=dynamic_sampling, max_refills=max_refills, pods_m=pods_m,
                          eval_size=eval_size, lo=lo, hi=hi, target=target, model_key=model_key, template=template,
                          seed=seed)
    name = resolve(ws, ref).name
    folder = out or ws.root / "runs" / f"loop-{name}-{strategy}"
    say = (lambda _: None) if quiet else (lambda text: ui.err.print(f"[dim]•[/] {text}"))
    report = run_loop(ws, ref, model, folder, settings, reward, resume=resume, say=say)
    if quiet:
        ui.out.print(str(report.out_dir))
        return
    columns = ["round", "prompts", "rollouts", "train_reward", "frac_reward_zero_std", "eval_reward", "seconds"]
    rows = [[r["round"], r["prompts"], r["rollouts"], _fmt(r["train_reward"]), _fmt(r["frac_reward_zero_std"]),
             _fmt(r["eval_reward"]), r["seconds"]] for r in report.rows]
    ui.out.print(ui.table(f"loop {ref} ({strategy}); held-out reward before: {_fmt(report.eval_before)}",
                          columns, rows))
    ui.out.print(f"run folder: {report.out_dir}  ·  model: {report.model}")


def _fmt(value) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    app.command("rollouts")(rollouts_cmd)
    app.command("loop")(loop_cmd)
