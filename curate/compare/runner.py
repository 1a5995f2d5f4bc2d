"""`curate compare`: which selection should I train on? Equal-budget ablations, as one command.

For every arm (a strategy chain; `random` is always one) and seed, a cell:
    select `budget` rows from POOL with the chain, seeded   (`run_select`, as `curate select`)
    fine-tune BASE on them with the one recipe, same seed    (`train_sft`, as `curate train sft`)
    evaluate the model on EVAL                               (`curate.train.evaluate`)
Cells run seed by seed (every arm of seed s before seed s + 1), so an interrupted run already
has paired results. Each cell is committed to the catalog's `comparisons` table when its
selection exists and again when it is done (`curate.catalog.comparisons`); a rerun with the
same settings skips the done cells, trains on a recorded selection instead of selecting
again, and resumes a cell's SFT from its last checkpoint. The summary pairs every arm with
`random` seed by seed (`curate.util.stats`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from curate.catalog.comparisons import Cell, load_cells, save_cell
from curate.catalog.versions import DatasetVersion, check_name, resolve
from curate.catalog.workspace import Workspace
from curate.compare.arms import REFERENCE, arm_chains, arm_params
from curate.compare.config import CompareConfig, recipe_hash
from curate.compare.guards import check_base, check_leakage, check_metric_columns
from curate.util.stats import ArmSummary, summarize
from curate.errors import BadInput, BadUsage, CurateError
from curate.selectors.base import parse_budget
from curate.selectors.pipeline import run_select

BASE_ARM = "(base)"  # the untrained base, scored once (seed -1)
Progress = Callable[[str, int, int | None], None]


@dataclass
class CompareResult:
    name: str
    pool: str
    eval: str
    base_model: str
    scorer_model: str
    metric: str
    budget: int
    recipe_hash: str
    recipe: dict[str, Any]
    strategies: list[str]
    cells: list[Cell]  # this run's cells, the base's first when it was scored
    arms: list[ArmSummary]
    computed: int  # cells run now
    reused: int  # cells found done in the catalog
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    config: CompareConfig | None = None

    @property
    def base(self) -> Cell | None:
        return next((c for c in self.cells if c.strategy == BASE_ARM), None)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("cells", "arms", "config")}
        out["config"] = asdict(self.config) if self.config else None
        out["arms"] = [a.as_dict() for a in self.arms]
        out["cells"] = [{**asdict(c), "created_at": str(c.created_at), "finished_at": str(c.finished_at)}
                        for c in self.cells]
        return out


def model_identity(model: str) -> str:
    """A model's identity for cell keys: a folder's fingerprint, else the name it is known by."""
    from curate.lm.loading import fingerprint
    from curate.train.proxy import ProxyConfig

    if model == "proxy":
        return f"proxy:{ProxyConfig().key()}"  # the pool's own proxy: the pool's hash is in the key too
    folder = Path(model).expanduser()
    return f"folder:{fingerprint(folder)}" if folder.is_dir() else f"hub:{model}"


def _local(model: str) -> str:
    folder = Path(model).expanduser()
    return str(folder.resolve()) if folder.is_dir() else model


def _slug(text: str) -> str:
    return text.replace(",", "-").replace("(", "").replace(")", "")


def _selection_name(name: str, arm: str) -> str:
    full = f"{name}-{_slug(arm)}"
    return full if len(full) <= 100 else f"{full[:83]}-{xxhash.xxh3_64_hexdigest(full.encode())}"


@dataclass
class _Context:
    """What every cell of one run shares."""

    ws: Workspace
    config: CompareConfig
    name: str
    pool: DatasetVersion
    eval: DatasetVersion
    base: str
    base_hash: str
    budget: int
    recipe: dict[str, Any]
    recipe_hash: str
    eval_rows: list[dict]
    metrics: list[str]
    params: dict[str, dict[str, Any]]

    def key(self, arm: str, seed: int) -> str:
        parts = [self.name, self.pool.content_hash, self.eval.content_hash, self.base_hash, arm, seed,
                 self.recipe_hash]
        return xxhash.xxh3_128_hexdigest("\0".join(map(str, parts)).encode())

    def new_cell(self, arm: str, seed: int) -> Cell:
        return Cell(self.key(arm, seed), self.name, self.pool.ref, self.pool.content_hash, self.eval.ref,
                    self.eval.content_hash, arm, seed, self.base, self.base_hash, self.config.scorer_model,
                    self.recipe_hash, self.recipe, self.config.metric)

    def run_dir(self, cell: Cell) -> Path:
        return self.ws.root / "compare" / self.name / f"{_slug(cell.strategy)}-seed{cell.seed}-{cell.cell_key[:8]}"


def run_compare(
    ws: Workspace,
    config: CompareConfig,
    *,
    say: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> CompareResult:
    """Run (or finish) the comparison `config` describes; every cell is committed as it finishes."""
    from curate.train.data import PROMPT_COLUMNS, iter_rows
    from curate.train.rewards import get_reward

    began = time.perf_counter()
    say = say or (lambda _: None)
    config.check()
    pool, eval_version = resolve(ws, config.pool), resolve(ws, config.eval)
    if pool.rows == 0:
        raise BadInput(f"POOL {pool.ref} is empty: there is nothing to select from")
    arms = arm_chains(config.strategies)
    params = arm_params(arms, config.params)
    budget = parse_budget(config.budget, pool.rows)
    if budget is None or budget > pool.rows:
        raise BadUsage(f"budget {config.budget} is larger than the pool: {pool.rows:,} rows",
                       hint=f"pass --budget {pool.rows:,} or less")
    check_leakage(pool, eval_version)
    notes = check_base(ws, pool, config.model)
    check_metric_columns(eval_version, config.metric, list(config.reward))
    if config.metric != "loss":
        for spec in config.reward:
            get_reward(spec)
    base = _local(config.model)
    recipe = config.recipe(budget, model_identity(config.scorer_model))
    eval_rows = list(iter_rows(eval_version, PROMPT_COLUMNS))
    has_response = any(isinstance(r.get("response"), str) and r["response"].strip() for r in eval_rows)
    ctx = _Context(ws, config, check_name(config.out or f"{pool.name}-compare"), pool, eval_version, base,
                   model_identity(base), budget, recipe, recipe_hash(recipe), eval_rows,
                   config.eval_metrics(has_response), params)

    plan = ([(BASE_ARM, -1)] if config.eval_base else []) + [(a, s) for s in config.seed_list for a in arms]
    stored = load_cells(ws, [ctx.key(a, s) for a, s in plan])
    done = {k for k, c in stored.items() if c.status == "done"}
    if config.resume and not stored:
        raise BadUsage(f"--resume: comparison {ctx.name} has no cells with these settings yet",
                       hint="run it without --resume (a rerun of the same command resumes by itself)")
    say(f"{ctx.name}: {len(arms)} arms x {config.seeds} seeds at {budget:,} rows from {pool.ref}, "
        f"base {base}, scorer {config.scorer_model}, {config.metric} on {eval_version.ref}; "
        f"{len(done & {ctx.key(a, s) for a, s in plan})} of {len(plan)} cells already done")
    cells: list[Cell] = []
    computed = 0
    for index, (arm, seed) in enumerate(plan):
        cell = stored.get(ctx.key(arm, seed))
        if cell is None or cell.status != "done":
            label = f"[{index + 1}/{len(plan)}] {arm}" + ("" if arm == BASE_ARM else f" seed {seed}")
            cell = (_score_base if arm == BASE_ARM else _run_cell)(ctx, cell or ctx.new_cell(arm, seed), label,
                                                                 progress)
            computed += 1
            say(f"{label}: {config.metric} {_format(cell.metrics.get(config.metric))} ({cell.seconds:.0f}s)")
        cells.append(cell)

    values = {arm: {c.seed: float(c.metrics[config.metric]) for c in cells
                    if c.strategy == arm and c.metrics.get(config.metric) is not None} for arm in arms}
    summaries = summarize(values, config.metric, REFERENCE, config.bootstrap_resamples, config.seed)
    return CompareResult(ctx.name, pool.ref, eval_version.ref, base, config.scorer_model, config.metric, budget,
                         ctx.recipe_hash, recipe, arms, cells, summaries, computed, len(plan) - computed, notes,
                         round(time.perf_counter() - began, 2), config)


def _format(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _stored_selection(ws: Workspace, cell: Cell) -> DatasetVersion | None:
    if not cell.selection:
        return None
    try:
        return resolve(ws, cell.selection)
    except CurateError:
        return None


def _run_cell(ctx: _Context, cell: Cell, label: str, progress: Progress | None) -> Cell:
    from curate.train.checkpoints import load_checkpoint
    from curate.train.sft import train_sft

    config = ctx.config
    report = (lambda what, done, total: progress(f"{label}: {what}", done, total)) if progress else None
    selection = _stored_selection(ctx.ws, cell)
    if selection is None:
        t0 = time.perf_counter()
        selected = run_select(ctx.ws, ctx.pool.ref, cell.strategy, budget=ctx.budget, model=config.scorer_model,
                              out=_selection_name(ctx.name, cell.strategy), params=ctx.params[cell.strategy],
                              seed=cell.seed, template=config.template, progress=report)
        selection = selected.version
        if selection.rows != ctx.budget:
            raise BadInput(f"arm {cell.strategy} kept {selection.rows:,} rows ({selection.ref}), not the budget "
                           f"{ctx.budget:,}: every arm must train on the same number of rows",
                           hint="put filters (dedup) before the last ranking step, e.g. dedup,fisher; "
                                "and give no ranking step its own budget")
        cell.selection, cell.select_s = selection.ref, round(time.perf_counter() - t0, 3)
        save_cell(ctx.ws, cell)

    run_dir = ctx.run_dir(cell)
    t0 = time.perf_counter()
    sft = config.sft_config(cell.seed)
    stats = train_sft(ctx.base, selection, run_dir, sft, resume=load_checkpoint(run_dir) is not None,
                      progress=(lambda step, _m: report("SFT", step, sft.steps)) if report else None)
    cell.train_s = round(time.perf_counter() - t0, 3)
    if report:
        report("evaluating", 0, None)
    result = _evaluate(ctx, run_dir)
    cell.model_path = str(run_dir)
    cell.metrics = {**result, "train_final_loss": stats["final_loss"], "train_tokens": stats["tokens"],
                    "train_examples": stats["examples"], "train_masked_tokens": stats["masked_tokens"]}
    _finish(ctx, cell)
    if not config.keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    return cell


def _score_base(ctx: _Context, cell: Cell, label: str, progress: Progress | None) -> Cell:
    if progress:
        progress(f"{label}: evaluating the untrained base", 0, None)
    cell.model_path = ctx.base
    cell.metrics = _evaluate(ctx, ctx.base)
    return _finish(ctx, cell)


def _evaluate(ctx: _Context, model: str | Path) -> dict[str, Any]:
    from curate.train.evaluate import evaluate

    t0 = time.perf_counter()
    config = ctx.config
    result = evaluate(str(model), ctx.eval_rows, ctx.metrics, list(config.reward), config.max_new_tokens,
                      config.template, config.max_length, config.dtype, config.device, config.eval_batch_size)
    return {**result.metrics, "eval_rows": result.rows, "scored": result.scored, "unscored": result.unscored,
            "loss_tokens": result.loss_tokens, "eval_s": round(time.perf_counter() - t0, 3)}


def _finish(ctx: _Context, cell: Cell) -> Cell:
    cell.eval_s = cell.metrics.pop("eval_s")
    cell.value = cell.metrics.get(ctx.config.metric)
    cell.status = "done"
    cell.seconds = round(sum(s or 0.0 for s in (cell.select_s, cell.train_s, cell.eval_s)), 3)
    return save_cell(ctx.ws, cell)
