"""`curate compare`: equal-budget ablations of selection strategies (see docs/compare.md)."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer

from curate.cli import ui
from curate.cli.options import (BatchTokensOpt, BudgetOpt, ConfigOpt, DebugOpt, DeviceOpt, DtypeOpt, GradAccumOpt,
                                JsonOpt, LoraOpt, LossOpt, LrOpt, MaxCompletionOpt, MaxLengthOpt, QuietOpt, RewardOpt,
                                ScheduleOpt, ScorerModelOpt, SeedOpt, StepsOpt, TemplateOpt, WaitOpt, WarmupOpt,
                                WorkspaceOpt, command, given, model_option, open_workspace, out_option, param_option,
                                parse_key_values, strategy_option)

Opt = typer.Option


def compare_cmd(
    pool: Annotated[str, typer.Argument(help="Dataset to select from: NAME or NAME@vN.")],
    strategy: Annotated[list[str], strategy_option("An arm: a strategy or a chain (dedup,fisher); repeat for more "
                                                   "arms. random is always an arm.")],
    model: Annotated[str, model_option("The BASE model every arm fine-tunes (a folder or hub id; it must not have "
                                       "been trained on POOL).")],
    eval_: Annotated[str, Opt("--eval", "-e", help="Held-out dataset version: NAME or NAME@vN; must share no "
                                                   "rows with POOL.")],
    budget: BudgetOpt = None,
    seeds: Annotated[int | None, Opt(help="Seeds per arm (SEED, SEED+1, ...).")] = None,
    steps: StepsOpt = None,
    metric: Annotated[str | None, Opt(help="accuracy (greedy, through --reward), loss (response tokens) or "
                                           "reward (mean).")] = None,
    reward: RewardOpt = None,
    scorer_model: ScorerModelOpt = None,
    param: Annotated[list[str] | None, param_option("STRATEGY.NAME=VALUE for the arms with that step (or "
                                                    "NAME=VALUE), e.g. fisher.dim=32.")] = None,
    out: Annotated[str | None, out_option("Name of the comparison (its cells and selections; default: "
                                          "POOL-compare).")] = None,
    lr: LrOpt = None,
    batch_tokens: BatchTokensOpt = None,
    grad_accum: GradAccumOpt = None,
    warmup: WarmupOpt = None,
    lr_schedule: ScheduleOpt = None,
    loss: LossOpt = None,
    max_length: MaxLengthOpt = None,
    lora: LoraOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    max_completion_length: MaxCompletionOpt = None,
    eval_base: Annotated[bool | None, Opt("--eval-base/--no-eval-base", help="Also score the untrained base "
                                                                             "once.")] = None,
    keep_checkpoints: Annotated[bool | None, Opt("--keep-checkpoints", help="Keep each cell's SFT checkpoint "
                                                                            "(optimizer state) when it is done.")] = None,
    resume: Annotated[bool, Opt("--resume", help="Continue a comparison (a rerun of the same command does too; "
                                                 "--resume also insists that there is one).")] = False,
    as_json: JsonOpt = False,
    template: TemplateOpt = None,
    workspace: WorkspaceOpt = None,
    wait: WaitOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Which selection should I train on? Select BUDGET rows with each arm, fine-tune BASE on them with one
    recipe, score on EVAL, over several seeds; report each arm against random, paired by seed.

    Every cell (arm x seed) is committed to the catalog as it finishes: rerun the same command after an
    interruption and only the missing cells run. `curate show POOL` lists the comparisons.

    Examples:
      curate compare pool --strategy dedup,perplexity,random --strategy dedup,fisher --budget 300 --seeds 3 \\
          --model ./base --eval heldout --steps 100 --reward math
      curate compare pool -s ifd -s perplexity --budget 10% --model ./base --eval heldout --metric loss
      curate compare pool -s fisher --budget 500 --model ./base --eval heldout --scorer-model ./scorer \\
          --param fisher.dim=32 --json
    """
    from curate.compare import CompareConfig, run_compare  # imports torch: keep `curate --help` fast

    cfg = CompareConfig(pool=pool, eval=eval_, model=model, strategies=list(strategy),
                        params=parse_key_values(param, "--param"), seed=seed, resume=resume,
                        **given(budget=budget, seeds=seeds, steps=steps, metric=metric, reward=reward or None,
                                scorer_model=scorer_model, out=out, lr=lr, batch_tokens=batch_tokens,
                                grad_accum=grad_accum, warmup=warmup, lr_schedule=lr_schedule, loss=loss,
                                max_length=max_length, lora=lora, dtype=dtype, device=device,
                                max_new_tokens=max_completion_length, eval_base=eval_base,
                                keep_checkpoints=keep_checkpoints, template=template))
    ws = open_workspace(workspace, wait)
    say = (lambda text: None) if quiet or as_json else ui.say
    with ui.progress(f"comparing on {pool}", quiet=quiet or as_json) as update:
        result = run_compare(ws, cfg, say=say,
                             progress=lambda what, done, total: update(done, total=total, description=what))
    if as_json:
        ui.out.print_json(json.dumps(_finite(result.as_dict()), default=str))
        return
    if quiet:
        for arm in result.arms:
            ui.out.print(f"{arm.strategy}\t{arm.mean}")
        return
    for note in result.notes:
        ui.note("note", note)
    print_result(result)


def _finite(value: Any) -> Any:
    """NaN and infinities as null, so --json prints strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _value(metric: str, value: float | None, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "-"
    if metric == "accuracy":
        return f"{value * 100:+.1f} pp" if signed else f"{value:.1%}"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _interval(metric: str, ci: tuple[float, float] | None, signed: bool = False) -> str:
    if ci is None or any(math.isnan(v) for v in ci):
        return "-"
    return f"[{_value(metric, ci[0], signed)}, {_value(metric, ci[1], signed)}]"


def print_result(result) -> None:
    metric = result.metric
    better = "lower" if metric == "loss" else "higher"
    rows = []
    for arm in result.arms:
        paired = arm.diff_mean is not None
        rows.append([arm.strategy, arm.n, f"{_value(metric, arm.mean)} ± {_value(metric, arm.sd)}",
                     _interval(metric, arm.ci), _value(metric, arm.diff_mean, True) if paired else "-",
                     _interval(metric, arm.diff_ci_t, True) if paired else "-",
                     _interval(metric, arm.diff_ci_bootstrap, True) if paired else "-",
                     f"{arm.wins}/{arm.ties}/{arm.losses}" if paired else "-",
                     " ".join(_value(metric, v) for v in arm.values)])
    base = result.base
    if base is not None:
        rows.append(["(base, untrained)", "-", _value(metric, base.metrics.get(metric)), *["-"] * 6])
    columns = ["arm", "seeds", "mean ± sd", "95% CI", "Δ vs random", "Δ 95% CI (t)", "Δ 95% CI (bootstrap)",
               "W/T/L", "per seed"]
    title = (f"{metric} on {result.eval} ({better} is better), {result.budget:,} rows from {result.pool} per arm, "
             f"base {result.base_model}")
    ui.out.print(ui.table(title, columns, [[str(v) for v in row] for row in rows]))
    ui.out.print(ui.key_values(f"comparison {result.name}", {
        "scorer model (selectors)": result.scorer_model, "base model (trained)": result.base_model,
        "recipe": f"{result.recipe['sft']['steps']} SFT steps, lr {result.recipe['sft']['lr']}, "
                  f"recipe hash {result.recipe_hash}",
        "paired intervals": f"t with n - 1 degrees of freedom; percentile bootstrap of the seeds, "
                            f"{result.config.bootstrap_resamples:,} resamples, seed {result.config.seed}",
        "cells": f"{result.computed} run now, {result.reused} reused", "seconds": result.seconds,
    }))
    ui.out.print(f"next: curate show {result.pool}   ·   rerun the same command to finish or extend it")


def register(app: typer.Typer) -> None:
    app.command("compare", cls=command("curate.compare.config:CompareConfig",
                                       max_completion_length="max_new_tokens"))(compare_cmd)
