"""Data-parallel training across processes started by torchrun (`torch.distributed.run`).

`curate train sft|grpo --nproc N` re-runs the same command under `torch.distributed.run`
(`torchrun --standalone --nproc-per-node N -m curate ...`); a command started by torchrun
itself works the same. Each process finds its rank in the environment torchrun sets
(RANK, WORLD_SIZE, LOCAL_RANK) and joins one process group: gloo on CPU, nccl on CUDA,
one GPU per local rank.

Data parallelism is exact, not approximate: every rank knows the whole step (the same
micro-batches or GRPO groups, in the same global order as one process), computes the
gradient of its share of the step's loss, normalised by the whole step's token count, and
the gradients are summed across ranks once per optimizer step (`sum_gradients`, one
all-reduce of a flat buffer; no DDP hooks, since the trainers call the decoder and the LM
head directly rather than the model's forward). So N ranks with A micro-batches each take
the step that one process takes with N x A micro-batches, up to float summation order.
Rank 0 alone writes checkpoints, metrics, the model folder and catalog/ledger rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from curate.errors import BadUsage

T = TypeVar("T")
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
LAUNCHER = "`torch.distributed.run --standalone --nproc-per-node={nproc}`"  # torchrun's own command line


@dataclass(frozen=True)
class Dist:
    """This process's place among the training processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def share(self, count: int) -> range:
        """This rank's contiguous share of `count` items (rank r gets [r*count/N, (r+1)*count/N))."""
        return range(self.rank * count // self.world, (self.rank + 1) * count // self.world)

    def owns(self, index: int) -> bool:
        """Round-robin ownership of work items (chunks): item i belongs to rank i mod N."""
        return index % self.world == self.rank


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_ENV) and int(os.environ["WORLD_SIZE"]) > 1


def setup(device: str = "auto") -> tuple[Dist, str]:
    """Join the process group torchrun describes (once per process); return (Dist, the device this rank uses)."""
    if not launched_by_torchrun():
        return Dist(), device
    import torch.distributed as tdist

    rank, world, local = (int(os.environ[name]) for name in TORCHRUN_ENV)
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if device not in ("auto", "cuda"):
            raise BadUsage(f"--device {device} names one GPU, but --nproc runs one process per GPU",
                           hint="leave --device auto (rank r uses cuda:r on its node)")
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if cuda else "gloo")
    return Dist(rank, world, local), device


def shutdown() -> None:
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def barrier(dist: Dist) -> None:
    if dist.active:
        import torch.distributed as tdist

        tdist.barrier()


def sum_gradients(params: Iterable[torch.nn.Parameter], dist: Dist) -> None:
    """Sum every trainable parameter's gradient over the ranks (a missing gradient counts as zero)."""
    if not dist.active:
        return
    import torch.distributed as tdist

    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:  # this rank's share never reached p (e.g. every chunk skipped): zero, like the others
            p.grad = torch.zeros_like(p)
    by_dtype: dict[tuple[torch.dtype, torch.device], list[torch.nn.Parameter]] = {}
    for p in params:
        by_dtype.setdefault((p.grad.dtype, p.grad.device), []).append(p)
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        tdist.all_reduce(flat)
        offset = 0
        for p in group:
            p.grad.copy_(flat[offset:offset + p.grad.numel()].view_as(p.grad))
            offset += p.grad.numel()


def sum_values(values: dict[str, float], dist: Dist) -> dict[str, float]:
    """Per-key sums over the ranks of this rank's float metrics (the same keys on every rank)."""
    if not dist.active or not values:
        return values
    import torch.distributed as tdist

    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    tdist.all_reduce(tensor)
    return dict(zip(keys, tensor.tolist()))


def gather(items: Sequence[T], dist: Dist) -> list[T]:
    """Every rank's list, concatenated in rank order, on every rank."""
    if not dist.active:
        return list(items)
    import torch.distributed as tdist

    parts: list[Any] = [None] * dist.world
    tdist.all_gather_object(parts, list(items))
    return [item for part in parts for item in part]


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """The command line without `--nproc N` / `--nproc=N`, for the processes torchrun starts."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """`torchrun --standalone --nproc-per-node N -m curate ARGV` (ARGV without --nproc), as this Python runs it."""
    launcher = LAUNCHER.strip("`").format(nproc=nproc).split()
    return [sys.executable, "-m", *launcher, "-m", "curate", *strip_nproc(argv)]


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run the curate command line `argv` on `nproc` processes; return torchrun's exit code."""
    if nproc < 1:
        raise BadUsage(f"--nproc must be >= 1, got {nproc}", hint="--nproc 2 (one process per GPU, or CPU cores)")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.call(torchrun_command(nproc, argv), env=env)
