"""Row jobs on a Ray cluster with Ray Data: shards read by tasks, models held by an actor pool.

The plan (Moritz et al., "Ray", OSDI 2018; Ray Data's streaming executor):
- the driver cuts the rows to compute into units (a Parquet file, one row group, the row
  offsets wanted in it), a few per worker, so the work spreads evenly and a resumed run
  reads only the row groups it still needs;
- `ray.data.from_items(units)` -> `map_batches(read)`: Ray tasks read the units' rows from
  the shards, so data goes from storage to the workers, never through the driver;
- `map_batches(JobActor, compute=ActorPoolStrategy(size=workers))`: each actor loads the
  job's models once (one GPU per actor when the cluster has GPUs) and runs the job on a
  unit at a time;
- `iter_batches` streams each unit's results back as it completes, so the caller can commit
  them in chunks while the rest still runs.

Results travel as pickles of numpy arrays (exact: the same floats the local engine makes).
Model paths must name the same files on every node (shared storage) or be hub ids; the
`curate` package must be installed on the nodes. This module knows no catalog: it reads the
Parquet files it is given.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import BadUsage, CurateError
from curate.lm.rowjobs import RowJob

UNITS_PER_WORKER = 4  # units per actor: enough to balance uneven rows, few enough to keep per-unit costs small
MAX_UNIT_ROWS = 2048
MIN_UNIT_ROWS = 16
READ_CPUS = 0.25  # reading a unit is light; it must not wait for CPUs the actors hold
COLUMNS = ("id", "prompt", "response")


def require_ray() -> None:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise BadUsage("--engine ray needs Ray Data, which is not installed",
                       hint="pip install 'curate[ray]' (or pip install 'ray[data]')") from None


def connect(address: str | None = None) -> None:
    """Join the cluster at `address`, or start a local Ray; reuse a Ray this process already started."""
    import ray

    if ray.is_initialized():
        _quiet()
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 configure_logging=True)
    except ConnectionError as exc:
        raise CurateError(f"could not join the Ray cluster at {address}: {exc}",
                          hint="check the address (`ray status` on the head node prints it), or drop --address "
                               "to start a local Ray") from None
    _quiet()


def _quiet() -> None:
    import ray.data

    for name in ("ray", "ray.data"):  # curate prints its own progress; Ray's notes are for Ray's users
        logging.getLogger(name).setLevel(logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False


# -- units ---------------------------------------------------------------------------------
def plan_units(files: Sequence[str], rows: np.ndarray, workers: int) -> list[dict[str, Any]]:
    """Units for the (sorted) global row numbers `rows` of `files` read in order: each within one
    row group, of at most ⌈rows / (workers · UNITS_PER_WORKER)⌉ rows (clamped to [16, 2048])."""
    import pyarrow.parquet as pq

    size = min(MAX_UNIT_ROWS, max(MIN_UNIT_ROWS, math.ceil(len(rows) / (workers * UNITS_PER_WORKER))))
    units: list[dict[str, Any]] = []
    start = 0
    for file in files:
        meta = pq.ParquetFile(file).metadata
        for group in range(meta.num_row_groups):
            stop = start + meta.row_group(group).num_rows
            lo, hi = np.searchsorted(rows, [start, stop])
            for first in range(lo, hi, size):
                picked = rows[first:min(hi, first + size)]
                units.append({"file": str(file), "group": group, "offsets": (picked - start).tolist(),
                              "rows": picked.tolist()})
            start = stop
    return units


def _read_units(units) -> Any:
    """Ray Data task: the rows of some units, with `_row` (their global row number)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for file, group, offsets, rows in zip(*(units[c].to_pylist() for c in ("file", "group", "offsets", "rows"))):
        parquet = pq.ParquetFile(file)
        present = [c for c in COLUMNS if c in parquet.schema_arrow.names]
        table = parquet.read_row_group(group, columns=present).take(pa.array(offsets, pa.int64()))
        if "response" not in present:
            table = table.append_column("response", pa.nulls(table.num_rows, pa.string()))
        tables.append(table.select(list(COLUMNS)).append_column("_row", pa.array(rows, pa.int64())))
    return pa.concat_tables(tables, promote_options="permissive")


class JobActor:
    """Holds a row job's models for the life of the actor pool and runs the job on units of rows."""

    def __init__(self, job: RowJob):
        import ray
        import torch

        from curate.lm.loading import load

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        torch.set_num_threads(max(1, math.ceil(cpus)))
        dtype = "auto" if torch.cuda.is_available() else "float32"  # as the local engine loads
        self.job = job
        self.lms = [load(model, dtype=dtype) for model in job.models]
        job.check(self.lms)

    def __call__(self, table):
        import pyarrow as pa

        results, truncated = self.job.run(self.lms, table.column("prompt").to_pylist(),
                                          table.column("response").to_pylist())
        return pa.table({"_row": table.column("_row"), "id": table.column("id"),
                         "result": pa.array([pickle.dumps(r, protocol=5) for r in results], pa.binary()),
                         "truncated": pa.array(truncated, pa.bool_())})


def _resources(workers: int) -> tuple[float, float]:
    """(CPUs, GPUs) per actor: one GPU each where the cluster has GPUs, else an equal share of the
    CPUs of the largest node, less READ_CPUS (the actors must leave room for the read tasks that
    feed them, or the pipeline waits forever), at least half a CPU. The actor runs torch on its
    share rounded up."""
    import ray

    if ray.cluster_resources().get("GPU", 0) >= 1:
        return 1.0, 1.0
    nodes = [n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources().get("CPU", 1)
    per_node = max(nodes, default=total)
    return max(0.5, min(per_node, total / workers) - READ_CPUS), 0.0


def map_units(units: list[dict[str, Any]], job: RowJob, workers: int,
              address: str | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, list, int]]:
    """(global rows, ids, results, rows cut to the context) per unit, in completion order."""
    import ray
    import ray.data

    if not units:
        return
    connect(address)
    cpus, gpus = _resources(workers)
    dataset = ray.data.from_items(units, override_num_blocks=len(units))
    dataset = dataset.map_batches(_read_units, batch_size=None, batch_format="pyarrow", num_cpus=READ_CPUS)
    dataset = dataset.map_batches(JobActor, fn_constructor_args=(job,), batch_size=None, batch_format="pyarrow",
                                  compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus, num_gpus=gpus)
    try:
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            yield (batch.column("_row").to_numpy(), np.asarray(batch.column("id").to_pylist(), dtype=object),
                   [pickle.loads(b) for b in batch.column("result").to_pylist()],
                   int(np.count_nonzero(batch.column("truncated").to_numpy(zero_copy_only=False))))
    except Exception as exc:
        cause = _curate_cause(exc)
        if cause is not None:
            raise type(cause)(cause.message, hint=cause.hint) from None
        raise


def _curate_cause(exc: BaseException) -> CurateError | None:
    """The CurateError a worker raised, through Ray's wrappers (RayTaskError.cause, __cause__)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, CurateError):
            return current
        todo += [getattr(current, "cause", None), current.__cause__, current.__context__]
    return None


@contextlib.contextmanager
def source_files(files: Sequence[Path] | None, frame=None) -> Iterator[list[str]]:
    """The Parquet files to read: a version's shards, or rows held in memory written to a temporary
    file (which a local Ray can read; a multi-node cluster needs the rows in a workspace on shared storage)."""
    if files is not None:
        yield [str(f) for f in files]
        return
    columns = [c for c in COLUMNS if c in frame.columns]
    with tempfile.TemporaryDirectory(prefix="curate-ray-") as folder:
        path = os.path.join(folder, "rows.parquet")
        frame.select(columns).write_parquet(path, row_group_size=max(1, frame.height))
        yield [path]
