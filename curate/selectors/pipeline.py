"""`curate select` and `curate score` as functions: chains of strategies over a dataset version.

`run_select` runs `--strategy a,b,...` in order. Each step fits on the previous step's kept
rows (in that step's order) and selects; the last step's kept rows, in its order, become ONE
new dataset version whose lineage has one step per strategy (with its parameters, model,
rows in and out, and drop counts) and whose `drops` rows carry the step that dropped them.

How the budget applies in a chain:
- `--budget N` (a count such as 500, a fraction such as 0.1 or 1.0, or 10%: the rules are in
  `base.parse_budget`) goes to the LAST ranking step
  (kind `rank` or `set`: random, length, perplexity, ifd, fisher, diversity);
- filters (dedup) and annotators (token-clean) ignore it; token-clean's own budget is
  `ratio`, the fraction of tokens kept;
- an earlier ranking step keeps every row it can score, best first, unless it is given its
  own budget with `--param STEP.budget=N`;
- set steps (fisher, diversity) need a budget; a budget larger than the rows a step can keep
  is an error naming how many it could keep.

Per-step parameters: `--param fisher.dim=32` sets `dim` of every fisher step, `--param 2.dim=32`
that of the second step only, and a bare `--param threshold=0.9` every step that has such a
parameter (an error when none has).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from curate.catalog.versions import DatasetVersion, Lineage, check_name, resolve
from curate.catalog.workspace import Workspace
from curate.errors import BadInput, BadUsage
from curate.selectors import registry
from curate.selectors.base import Selection, Selector, parse_budget
from curate.selectors.pool import Pool, Progress

RANKING = ("rank", "set")


@dataclass
class StepReport:
    strategy: str
    params: dict[str, Any]
    budget: int | None
    rows_in: int
    rows_out: int
    drop_counts: dict[str, int]
    seconds: float
    model_id: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class SelectReport:
    source: DatasetVersion
    version: DatasetVersion
    steps: list[StepReport]
    budget: int | None
    seconds: float


@dataclass
class ScoreReport:
    source: DatasetVersion
    scorer: str
    scorer_key: str
    rows: int
    scored: int
    nan: int
    cached: int
    summary: dict[str, float]
    seconds: float
    truncated: int = 0  # rows longer than the model's context, scored on their first tokens


def parse_strategies(text: str | list[str]) -> list[str]:
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n and n.strip()]
    if not names:
        raise BadUsage("--strategy is empty", hint="e.g. --strategy fisher or --strategy dedup,fisher")
    return names


def split_params(params: dict[str, Any], names: list[str], classes: list[type]) -> tuple[list[dict], list[int | None]]:
    """Per-step constructor parameters and per-step budgets from `--param` keys."""
    per_step: list[dict[str, Any]] = [{} for _ in names]
    budgets: list[Any] = [None] * len(names)
    for key, value in params.items():
        scope, dot, param = key.rpartition(".")
        if not dot:
            targets = [i for i, cls in enumerate(classes) if param in cls.param_names() or param == "budget"]
            if not targets:
                raise BadUsage(f"--param {key}: no step of this selection takes {param!r}",
                               hint="qualify it as STRATEGY.NAME; parameters: " + _describe(names, classes))
        elif scope.isdigit():
            index = int(scope) - 1
            if not 0 <= index < len(names):
                raise BadUsage(f"--param {key}: there is no step {scope} (the selection has {len(names)})")
            targets = [index]
        else:
            targets = [i for i, n in enumerate(names) if n == scope]
            if not targets:
                raise BadUsage(f"--param {key}: {scope!r} is not a step of this selection", hint="steps: " + ", ".join(names))
        for i in targets:
            if param == "budget":
                budgets[i] = value
            else:
                per_step[i][param] = value
    return per_step, budgets


def _describe(names: list[str], classes: list[type]) -> str:
    return "; ".join(f"{n}: {', '.join(c.param_names()) or '-'}" for n, c in zip(names, classes))


def plan_budgets(names: list[str], classes: list[type], budget: Any, step_budgets: list[Any], rows: int) -> list[int | None]:
    """The budget of each step (see the module docstring)."""
    ranking = [i for i, cls in enumerate(classes) if cls.kind in RANKING]
    plan = [parse_budget(b, rows, f"--param {name}.budget") for b, name in zip(step_budgets, names)]
    if budget is not None:
        if not ranking:
            raise BadUsage(f"--budget needs a ranking strategy, and {', '.join(names)} only filter or annotate",
                           hint="add one, e.g. --strategy " + ",".join(names + ["fisher"]) + ", or drop --budget")
        last = ranking[-1]
        if plan[last] is None:
            plan[last] = parse_budget(budget, rows)
    for i, cls in enumerate(classes):
        if plan[i] is not None and plan[i] > rows:
            raise BadUsage(f"budget {plan[i]:,} is larger than the pool: {rows:,} rows",
                           hint=f"pass --budget {rows:,} or less")
        if cls.kind == "set" and plan[i] is None:
            raise BadUsage(f"{names[i]} needs a budget", hint="pass --budget N")
    return plan


def _source(ws: Workspace, ref: str) -> DatasetVersion:
    version = resolve(ws, ref)
    if version.rows == 0:
        raise BadInput(f"dataset {version.ref} is empty: there is nothing to select from")
    return version


def run_select(
    ws: Workspace,
    ref: str,
    strategy: str | list[str],
    budget: Any = None,
    model: str = "proxy",
    out: str | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    template: str = "auto",
    progress: Progress | None = None,
    on_step: Callable[[StepReport], None] | None = None,
) -> SelectReport:
    """Select from `ref` with one strategy or a chain; commit the result as a new version."""
    start = time.perf_counter()
    names = [n.strip().lower() for n in parse_strategies(strategy)]
    classes = [registry.get(n) for n in names]
    names = [cls.name for cls in classes]
    per_step, step_budgets = split_params(params or {}, names, classes)
    selectors = [cls.from_params(p) for cls, p in zip(classes, per_step)]
    source = _source(ws, ref)
    plan = plan_budgets(names, classes, budget, step_budgets, source.rows)
    out_name = check_name(out or f"{source.name}-{'-'.join(names)}")

    pool = Pool.from_version(source, ws, model=model, seed=seed, template=template, progress=progress)
    steps: list[Lineage] = []
    reports: list[StepReport] = []
    drops: list[pl.DataFrame] = []
    extras: list[pl.DataFrame] = []
    scored: list[pl.DataFrame] = []
    selection: Selection | None = None
    for index, (selector, step_budget) in enumerate(zip(selectors, plan)):
        began = time.perf_counter()
        if pool.rows == 0:
            raise BadInput(f"no rows are left for step {index + 1} ({selector.name}) of the selection")
        selection = selector.fit(pool).select(step_budget)
        report = _step_report(selector, selection, step_budget, pool.rows, began)
        reports.append(report)
        steps.append(Lineage(op="select", inputs=[source.ref], params={**selection.params, "budget": step_budget,
                                                                      "template": template},
                             strategy=selector.name, model_id=report.model_id, model_hash=selection.model_hash,
                             seed=seed, rows_in=report.rows_in, rows_out=report.rows_out,
                             drop_counts=report.drop_counts, duration_s=report.seconds))
        if selection.dropped.height:
            drops.append(selection.dropped.with_columns(pl.lit(index).alias("step")))
        if selection.extra is not None:
            extras.append(selection.extra)
        scored.append(selection.score_rows().with_columns(pl.lit(index).alias("step")))
        if on_step:
            on_step(report)
        pool = pool.subset(selection.ids)
    assert selection is not None
    from curate.catalog.selections import commit_selection

    kept = selection.kept.select("id", "rank")
    version = commit_selection(
        ws, source, out_name, kept, steps, strategy=",".join(names), budget=plan[-1] if plan else None,
        params={"steps": [{"strategy": s.strategy, "budget": s.budget, "params": s.params} for s in reports],
                "model": model, "seed": seed, "template": template},
        drops=pl.concat(drops).select("step", "id", "reason", "detail") if drops else None,
        extra=_merge_extras(extras, kept["id"]),
        step_scores=pl.concat(scored) if scored else None,
    )
    final_budget = next((b for b in reversed(plan) if b is not None), None)
    return SelectReport(source, version, reports, final_budget, round(time.perf_counter() - start, 3))


def _step_report(selector: Selector, selection: Selection, budget: int | None, rows_in: int,
                 began: float) -> StepReport:
    model_id = selection.model_id  # set only by selectors that ran a model
    if model_id == "proxy" and selector.pool_.shared.model_paths.get("proxy"):
        model_id = f"proxy ({selector.pool_.shared.model_paths['proxy']})"
    stats = dict(selection.stats)
    if hasattr(selector, "cached_rows_"):
        stats["cached_scores"] = selector.cached_rows_
    if getattr(selector, "pool_", None) is not None and selector.pool_.truncated:
        stats["truncated_rows"] = selector.pool_.truncated
    return StepReport(selector.name, selection.params, budget, rows_in, len(selection), selection.drop_counts,
                      round(time.perf_counter() - began, 3), model_id, stats)


def _merge_extras(extras: list[pl.DataFrame], ids: pl.Series) -> pl.DataFrame | None:
    """Per-example columns of every step, for the kept ids; a later step's column wins."""
    if not extras:
        return None
    merged = pl.DataFrame({"id": ids})
    for frame in extras:
        overlap = [c for c in frame.columns if c != "id" and c in merged.columns]
        merged = merged.drop(overlap).join(frame, on="id", how="left")
    return merged


def run_score(
    ws: Workspace,
    ref: str,
    scorer: str,
    model: str = "proxy",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    template: str = "auto",
    progress: Progress | None = None,
) -> ScoreReport:
    """Score every row of `ref` with one strategy's scorer and store the scores (no new version)."""
    from curate.catalog.scores import scorer_key, store_scores

    start = time.perf_counter()
    cls = registry.get(scorer)
    if not cls.scores_on_fit:
        raise BadUsage(f"{cls.name} has no score per example before it selects",
                       hint="run it with `curate select --strategy " + cls.name + "`")
    selector = cls.from_params({k.rpartition(".")[2]: v for k, v in (params or {}).items()})
    source = _source(ws, ref)
    pool = Pool.from_version(source, ws, model=model, seed=seed, template=template, progress=progress)
    selector.fit(pool)
    scores = np.asarray(selector.scores_, dtype=np.float64)
    key = getattr(selector, "scorer_key_", None)
    cached = int(getattr(selector, "cached_rows_", 0))
    if key is None:  # scorers that do not cache themselves: store what fit learned
        model_hash = getattr(selector, "model_hash_", None) if cls.uses_model else None
        key_params = {**selector.get_params(), "template": template, "seed": seed}
        key = scorer_key(cls.name, model_hash, key_params)
        store_scores(ws, source.ref, key, cls.name, model_hash, key_params,
                     pl.DataFrame({"id": pool.ids, "value": scores}))
    finite = scores[np.isfinite(scores)]
    summary = ({"min": float(finite.min()), "mean": float(finite.mean()), "median": float(np.median(finite)),
                "max": float(finite.max())} if len(finite) else {})
    return ScoreReport(source, cls.name, key, pool.rows, len(finite), np.isnan(scores).sum().item(), cached,
                       summary, round(time.perf_counter() - start, 3), pool.truncated)
