"""Selection commands: `curate select` (a new curated version) and `curate score` (scores only)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from curate.catalog.workspace import Workspace
from curate.cli import ui
from curate.cli.options import (BudgetOpt, ConfigOpt, DebugOpt, ParamOpt, QuietOpt, SeedOpt, TemplateOpt,
                                WorkspaceOpt, command, given, model_option, out_option, parse_key_values,
                                strategy_option)
from curate.errors import BadUsage
from curate.selectors.registry import STRATEGIES  # names only: importing a strategy's module waits for its use

STRATEGY_NAMES = ", ".join(STRATEGIES)


def _shortcuts(params: dict[str, str], **values) -> dict[str, str]:
    """Old shortcut options (--threshold, --dim, ...; hidden) as bare --param keys; explicit --param wins."""
    for key, value in values.items():
        if value is not None and key not in params:
            params[key] = str(value)
    return params


def _progress(update):
    """Selectors report rows; a model they train first (the proxy, a reference) reports optimizer steps."""
    return lambda what, done, total: update(done, total=total, description=what, unit=ui.unit_of(what))


def select_cmd(
    ref: Annotated[str, typer.Argument(help="Dataset to select from: NAME or NAME@vN.")],
    strategy: Annotated[str, strategy_option(f"A strategy, or several in order (dedup,fisher): {STRATEGY_NAMES}. "
                                             "See docs/selectors.md.")],
    budget: BudgetOpt = None,
    model: Annotated[str | None, model_option()] = None,
    out: Annotated[str | None, out_option("Name of the new dataset (default: NAME-STRATEGY).")] = None,
    param: ParamOpt = None,
    threshold: Annotated[float | None, typer.Option(hidden=True, help="= --param dedup.threshold.")] = None,
    dim: Annotated[int | None, typer.Option(hidden=True, help="= --param fisher.dim.")] = None,
    ratio: Annotated[float | None, typer.Option(hidden=True, help="= --param token-clean.ratio.")] = None,
    ref_model: Annotated[str | None, typer.Option(hidden=True, help="= --param token-clean.ref_model.")] = None,
    template: TemplateOpt = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Select a subset (or clean tokens) with one strategy or a chain; the result is a new dataset version.

    Examples:
      curate select gsm8k --strategy fisher --budget 500
      curate select gsm8k --strategy dedup,fisher --budget 5% --param dedup.threshold=0.97 --out gsm8k-small
      curate select gsm8k --strategy ifd --budget 1000 --model ./my-model
      curate select gsm8k --strategy token-clean --param ratio=0.6 --param ref_model=./warm-model
      curate select pool --strategy dedup,fisher --budget 2000 --param fisher.dim=32 --param dedup.threshold=0.9

    fisher.pooled=true keeps one mean vector per example: it maximises a lower bound of FisherSFT's
    token-level log det (Jensen), a different objective, for pools too large for the token states.
    """
    from curate.selectors.pipeline import run_select  # imports numpy/polars-heavy code: keep --help fast

    ws = Workspace.open(workspace)
    params = _shortcuts(parse_key_values(param, "--param"), threshold=threshold, dim=dim, ratio=ratio,
                        ref_model=ref_model)
    with ui.progress(f"selecting from {ref}", quiet=quiet) as update:
        report = run_select(ws, ref, strategy, budget=budget, out=out, params=params, seed=seed,
                            progress=_progress(update), **given(model=model, template=template))
    if quiet:
        ui.out.print(report.version.ref)
        return
    rows = []
    for step in report.steps:
        dropped = ", ".join(f"{reason} {count:,}" for reason, count in step.drop_counts.items()) or "-"
        rows.append([step.strategy, "-" if step.budget is None else f"{step.budget:,}", f"{step.rows_in:,}",
                     f"{step.rows_out:,}", dropped, f"{step.seconds:.1f}"])
    ui.out.print(ui.table(f"{report.source.ref} -> {report.version.ref}",
                          ["step", "budget", "rows in", "kept", "dropped (by reason)", "seconds"], rows))
    details = {"output": report.version.ref, "kept": f"{report.version.rows:,} of {report.source.rows:,}",
               "dropped": f"{report.source.rows - report.version.rows:,}", "seconds": report.seconds}
    models = {s.model_id for s in report.steps if s.model_id}
    if models:
        details["model"] = ", ".join(sorted(models))
    for step in report.steps:
        if step.stats.get("truncated_rows"):
            details[f"{step.strategy}: rows cut to the model's context"] = f"{step.stats['truncated_rows']:,}"
        shown = {k: v for k, v in step.stats.items() if k in ("kept_fraction", "scored_kept_fraction", "tokens_unscored",
                                                               "logdet", "gain_evaluations", "cached_scores",
                                                               "covering_radius", "reference")}
        if shown:
            details[f"{step.strategy} details"] = json.dumps(shown, default=lambda v: round(v, 4))
    ui.out.print(ui.key_values("selection", details))
    for step in report.steps:
        if step.stats.get("tokens_unscored"):
            stats = step.stats
            ui.err.print(f"note: {step.strategy} kept {stats['kept_fraction']:.2%} of the response tokens: "
                         f"{stats['scored_kept_fraction']:.2%} of the {stats['tokens_scored']:,} scored ones (the ratio), "
                         f"and all {stats['tokens_unscored']:,} tokens past the model's context, which are not scored "
                         "and stay in the loss")
    ui.out.print(f"next: curate show {report.version.ref}   ·   curate export {report.version.ref} --to out.jsonl --trl")


def score_cmd(
    ref: Annotated[str, typer.Argument(help="Dataset to score: NAME or NAME@vN.")],
    scorer: Annotated[str, typer.Option("--scorer", help=f"The one strategy whose scores are stored: {STRATEGY_NAMES} "
                                                         "(those that only decide as a set say so).")],
    model: Annotated[str | None, model_option()] = None,
    param: ParamOpt = None,
    template: TemplateOpt = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Score every example and store the scores in the catalog, without selecting.

    A later `curate select` with the same dataset version, scorer, model and parameters
    reuses them instead of running the model again.

    Examples:
      curate score gsm8k --scorer ifd
      curate score gsm8k@v1 --scorer perplexity --model ./my-model
      curate score gsm8k --scorer token-clean --param ref_model=./warm-model
    """
    from curate.selectors.pipeline import run_score

    if "," in scorer:
        raise BadUsage("--scorer takes one scorer", hint="run `curate score` once per scorer")
    ws = Workspace.open(workspace)
    with ui.progress(f"scoring {ref}", quiet=quiet) as update:
        report = run_score(ws, ref, scorer, params=parse_key_values(param, "--param"), seed=seed,
                           progress=_progress(update), **given(model=model, template=template))
    if quiet:
        ui.out.print(report.scorer_key)
        return
    summary = {k: f"{v:.6g}" for k, v in report.summary.items()}
    ui.out.print(ui.key_values(f"{report.scorer} scores of {report.source.ref}", {
        "scorer key": report.scorer_key, "rows": f"{report.rows:,}", "scored": f"{report.scored:,}",
        "NaN (excluded when selecting)": f"{report.nan:,}", "reused from the catalog": f"{report.cached:,}",
        "rows cut to the model's context": f"{report.truncated:,}",
        **summary, "seconds": report.seconds,
    }))


def register(app: typer.Typer) -> None:
    app.command("select", cls=command("curate.selectors.pipeline:run_select"))(select_cmd)
    app.command("score", cls=command("curate.selectors.pipeline:run_score"))(score_cmd)
