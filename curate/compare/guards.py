"""What a comparison refuses before it spends any compute.

1. Leakage: an EVAL that shares rows with the POOL (same id, or same prompt after
   normalisation; `curate.catalog.overlap`). A model trained on a selection from the pool
   would be scored on rows it may have seen.
2. A BASE that was trained on the POOL: every arm would start from a model that has already
   fit the pool, its corrupted rows included, which blurs what the selection changes. The
   pool's proxy is such a model (`--model proxy` is refused outright). curate's records of
   a model folder (`curate.train.provenance`) are followed back through the models it started
   from; a run whose data shares rows with the pool refuses the base.
   What cannot be detected: hub ids and folders curate did not make (no record), runs whose
   dataset version is no longer in this workspace (only an exact content-hash match with the
   pool is seen), and data the pool shares by paraphrase. Those are reported as notes.
3. Rows the metric cannot use: accuracy and reward with `math` or `exact` need an `answer`
   column, `code` needs `tests`, loss needs `response`.
"""

from __future__ import annotations

import polars as pl

from curate.catalog.overlap import shared_rows
from curate.catalog.versions import DatasetVersion, list_versions, resolve
from curate.catalog.workspace import Workspace
from curate.errors import BadInput, BadUsage, CurateError
from curate.train.provenance import TrainingRun, training_history

REWARD_COLUMNS = {"math": "answer", "exact": "answer", "code": "tests"}


def check_leakage(pool: DatasetVersion, eval_version: DatasetVersion) -> None:
    overlap = shared_rows(eval_version, pool)
    if overlap:
        examples = "; ".join(repr(e) for e in overlap.examples)
        raise BadInput(f"leakage: EVAL {eval_version.ref} shares {overlap.rows:,} of its {eval_version.rows:,} rows "
                       f"with POOL {pool.ref} ({overlap.by_id:,} by id, {overlap.by_prompt:,} by normalised prompt), "
                       f"e.g. {examples}",
                       hint="held-out rows must be rows the pool does not hold: remove these from EVAL (or from "
                            "POOL), ingest it again, and compare on the new version")


def check_base(ws: Workspace, pool: DatasetVersion, base: str) -> list[str]:
    """Refuse a base trained on the pool; returns notes on what could not be checked."""
    if base == "proxy":
        raise BadUsage(f"--model proxy is the proxy of {pool.ref}, which was trained on that pool",
                       hint="pass a base that has not seen the pool as --model; the proxy belongs in --scorer-model")
    history = training_history(base)
    if not history:
        return [f"base {base}: curate has no record of what it was trained on, so overlap with {pool.ref} "
                "cannot be checked"]
    notes = []
    for run in history:
        shared, source = _shared_with_pool(ws, pool, run)
        if shared:
            via = "" if run.model == base else f", which {base} was trained from,"
            raise BadInput(f"base model {base} was trained on {pool.ref}'s rows: the {run.kind} run in {run.model}"
                           f"{via} trained on {source}, which shares {shared:,} rows with the pool",
                           hint="start every arm from a model that has not seen the pool (e.g. the model that run "
                                "started from); selectors may use such a model through --scorer-model")
        if shared is None:
            notes.append(f"base {base}: the {run.kind} run in {run.model} trained on {source}, which is not in this "
                         f"workspace: its overlap with {pool.ref} cannot be checked")
    return notes


def _shared_with_pool(ws: Workspace, pool: DatasetVersion, run: TrainingRun) -> tuple[int | None, str]:
    """(rows the run's data shares with the pool, or None when unknown; a description of the data)."""
    if run.ids:
        ids = set(run.ids)
        shared = pool.scan().select("id").collect()["id"].is_in(list(ids)).sum()
        return int(shared), f"{len(ids):,} rows given as a list"
    source = run.data_ref or "an unnamed dataset"
    if run.data_hash and pool.content_hash.startswith(run.data_hash):
        return pool.rows, f"{source} (the same content as the pool)"
    version = _find_version(ws, run)
    if version is None:
        return None, source
    return shared_rows(version, pool).rows, version.ref


def _find_version(ws: Workspace, run: TrainingRun) -> DatasetVersion | None:
    """The run's dataset version: by ref when its content hash agrees, else by content hash."""
    if run.data_ref:
        try:
            version = resolve(ws, run.data_ref)
        except CurateError:
            version = None
        if version is not None and (not run.data_hash or version.content_hash.startswith(run.data_hash)):
            return version
    if run.data_hash:
        return next((v for v in list_versions(ws) if v.content_hash.startswith(run.data_hash)), None)
    return None


def check_metric_columns(eval_version: DatasetVersion, metric: str, rewards: list[str]) -> None:
    needed = {"response"} if metric == "loss" else {REWARD_COLUMNS[r] for r in rewards if r in REWARD_COLUMNS}
    present = [c for c in sorted(needed) if c in eval_version.columns]
    counts = eval_version.scan().select(pl.col(c).is_not_null().sum() for c in present).collect().row(0, named=True) \
        if present else {}
    missing = [c for c in sorted(needed) if not counts.get(c)]
    if missing:
        raise BadInput(f"EVAL {eval_version.ref} has no values in {', '.join(missing)}, which --metric {metric}"
                       + ("" if metric == "loss" else f" with --reward {','.join(rewards)}") + " needs",
                       hint=f"ingest it with --map {missing[0]}=COLUMN, or choose another --metric")
