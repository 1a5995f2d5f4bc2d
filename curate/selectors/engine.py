"""Where a selector's model work runs: in this process (`local`) or on a Ray cluster (`ray`).

Both engines take a pool, a row job (`curate.lm.rowjobs`) and a mask of pool positions, and
yield (positions, one result per row) as results come in; rows come back in storage order
locally and in completion order from Ray. What the selector does with the results (scores,
FisherSFT's greedy log-det, k-center, the catalog commits) runs here on the driver either way:
the engines distribute only the model forward passes, which are the cost that grows with the
model and the pool (docs/scale.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from curate.errors import BadUsage
from curate.lm.rowjobs import RowJob

ENGINES = ("local", "ray")


class Engine(Protocol):
    name: str

    def map_rows(self, pool, job: RowJob, mask: np.ndarray, what: str) -> Iterator[tuple[np.ndarray, list]]:
        """(pool positions, results) for the rows of `pool` where `mask` is set."""


class _Progress:
    """Counts rows done from model batches (a row counts once however many passes the job makes)."""

    def __init__(self, pool, what: str, total: int, passes: int):
        self.pool, self.what, self.total, self.passes, self.done = pool, what, total, max(1, passes), 0.0

    def batch(self, rows: int) -> None:
        self.done += rows / self.passes
        self.pool.say(self.what, min(self.total, int(self.done)), self.total)

    def rows(self, rows: int) -> None:
        self.done += rows
        self.pool.say(self.what, min(self.total, int(self.done)), self.total)


@dataclass
class LocalEngine:
    """Models loaded once in this process; rows streamed from the shards and run a slice of at
    most `pool.commit_rows` rows at a time, so results come back as often as they are committed."""

    name: str = "local"

    def map_rows(self, pool, job: RowJob, mask: np.ndarray, what: str) -> Iterator[tuple[np.ndarray, list]]:
        lms = [pool.lm(model) for model in job.models]
        job.check(lms)
        progress = _Progress(pool, what, int(mask.sum()), job.passes)
        for frame in pool.iter_frames(["prompt", "response"], mask):
            for start in range(0, frame.height, pool.commit_rows):
                part = frame.slice(start, pool.commit_rows)
                results, truncated = job.run(lms, part["prompt"].to_list(), part["response"].to_list(),
                                             on_batch=progress.batch)
                pool.truncated += sum(truncated)
                yield part["_pos"].to_numpy(), results


@dataclass
class RayEngine:
    """Rows read from the version's shards by Ray Data tasks, scored by `workers` actors that each
    hold the job's models (one GPU each where the cluster has GPUs)."""

    workers: int = 1
    address: str | None = None
    name: str = "ray"

    def map_rows(self, pool, job: RowJob, mask: np.ndarray, what: str) -> Iterator[tuple[np.ndarray, list]]:
        from curate.lm import ray_engine

        total = int(mask.sum())
        if total == 0:
            return
        progress = _Progress(pool, what, total, 1)
        lookup = np.full(len(pool.shared.root_ids), -1, dtype=np.int64)
        positions = np.flatnonzero(mask)
        lookup[pool.root_pos[positions]] = positions
        with ray_engine.source_files(pool.version.files() if pool.version is not None else None,
                                     pool.shared.frame) as files:
            units = ray_engine.plan_units(files, np.sort(pool.root_pos[positions]), self.workers)
            for rows, ids, results, truncated in ray_engine.map_units(units, job, self.workers, self.address):
                found = lookup[rows]
                if (found < 0).any() or not np.array_equal(pool.shared.root_ids.gather(rows).to_numpy(), ids):
                    raise RuntimeError("ray engine: a worker returned rows that were not asked for")
                pool.truncated += truncated
                progress.rows(len(rows))
                yield found, results


def make_engine(name: str = "local", workers: int = 1, address: str | None = None) -> Engine:
    """The engine `--engine NAME --workers N --address ADDR` names."""
    key = (name or "local").strip().lower()
    if key not in ENGINES:
        raise BadUsage(f"unknown engine {name!r}", hint="engines: " + ", ".join(ENGINES))
    if workers < 1:
        raise BadUsage(f"--workers must be at least 1, got {workers}")
    if key == "local":
        if workers != 1:
            raise BadUsage(f"--workers {workers} runs several model workers: it needs --engine ray")
        if address:
            raise BadUsage("--address joins a Ray cluster: it needs --engine ray")
        return LocalEngine()
    from curate.lm.ray_engine import require_ray

    require_ray()
    return RayEngine(workers=workers, address=address)
