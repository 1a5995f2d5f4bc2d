"""FSDP2 for models too large to replicate on every rank (`--fsdp`): shard, step, checkpoint.

`shard(model)` applies `torch.distributed.fsdp.fully_shard` to each decoder layer and then
to the whole model (PyTorch's FSDP2 recipe): every rank keeps 1/N of the weights, gradients
and AdamW state, a layer's weights are all-gathered just before it runs and freed after, and
gradients are reduce-scattered as the backward pass leaves each layer. The trainers call the
decoder and the LM head directly, not the model's forward, so a step runs inside
`in_forward(model, fn)`, a method registered with `register_fsdp_forward_method`: the
root's own weights (embeddings, final norm, a tied or separate head) are gathered around
it exactly as around a forward. Gradients are summed over ranks, not averaged
(`set_gradient_divide_factor(1)`): each rank's loss is already its share of the step's mean.

Checkpoints go through `torch.distributed.checkpoint` (every rank writes its shards into
`OUT/checkpoint/dcp/`, which any number of ranks can load back: `--resume` with another N
works), and the final model folder is written by rank 0 from the gathered full state dict.
"""

from __future__ import annotations

import shutil
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from curate.train.checkpoints import Checkpoint, write_state_and_swap_in
from curate.train.distributed import Dist, barrier
from curate.lm.parts import decoder_of, unwrap

T = TypeVar("T")
DCP_FOLDER = "dcp"
FORWARD_METHOD = "curate_in_forward"


def shard(model: Any) -> Any:
    """Shard `model` in place over the process group (each decoder layer a unit, then the root)."""
    from curate.errors import BadUsage

    try:
        from torch.distributed.fsdp import FSDPModule, fully_shard, register_fsdp_forward_method
    except ImportError:
        FSDPModule = None
    if FSDPModule is None or not hasattr(FSDPModule, "set_force_sum_reduction_for_comms"):
        raise BadUsage(f"--fsdp needs FSDP2 with summed gradient reduction, which torch {torch.__version__} lacks",
                       hint="upgrade torch (pip install -U torch), or train data-parallel with --nproc alone")
    layers = getattr(decoder_of(model), "layers", None)
    if layers is None:
        raise BadUsage(f"--fsdp: cannot find the decoder layers of {type(unwrap(model)).__name__}",
                       hint="train it without --fsdp (data-parallel --nproc replicates the model)")
    for unit in [*layers, model]:  # the layers first: the root keeps what no layer holds
        fully_shard(unit)
        unit.set_gradient_divide_factor(1.0)  # summed, not averaged: each rank's loss is its share of the mean
        unit.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no pre-multiplied sum)
    setattr(model, FORWARD_METHOD, types.MethodType(lambda self, fn: fn(), model))
    register_fsdp_forward_method(model, FORWARD_METHOD)
    return model


def in_forward(model: Any, fn: Callable[[], T]) -> T:
    """Run `fn` as the model's forward (FSDP gathers the root's weights around it); plainly when not sharded."""
    method = getattr(model, FORWARD_METHOD, None)
    return method(fn) if method is not None else fn()


def full_norm(norm: torch.Tensor) -> float:
    """A gradient norm as a float, gathered first when FSDP returns it as a DTensor."""
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


def save_sharded(dist: Dist, out_dir: Path, model: Any, optimizer: torch.optim.Optimizer, step: int,
                 config: dict[str, Any], state: dict[str, Any]) -> None:
    """`OUT/checkpoint/` with the sharded weights and optimizer state (every rank writes its part)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    staging = out_dir / f".checkpoint-step{step}"
    if dist.main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    barrier(dist)
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(staging / DCP_FOLDER))
    if dist.main:
        torch.save({"cpu": torch.get_rng_state()}, staging / "rng.pt")
        write_state_and_swap_in(staging, out_dir, step, config, state)
    barrier(dist)


def restore_sharded(checkpoint: Checkpoint, model: Any, optimizer: torch.optim.Optimizer) -> None:
    """Load a sharded checkpoint (written by any number of ranks) into this sharded model and optimizer."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    from curate.errors import BadUsage

    folder = checkpoint.folder / DCP_FOLDER
    if not folder.is_dir():
        raise BadUsage(f"--resume --fsdp: {checkpoint.folder} holds a checkpoint written without --fsdp",
                       hint="resume with the run's own settings (without --fsdp)")
    model_state, optim_state = get_state_dict(model, optimizer)
    loaded = {"model": model_state, "optimizer": optim_state}
    dcp.load(loaded, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=loaded["model"], optim_state_dict=loaded["optimizer"])
    torch.set_rng_state(torch.load(checkpoint.folder / "rng.pt", weights_only=True)["cpu"])


def full_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The whole model's weights on CPU, on rank 0 (a collective: every rank calls it; the others get {})."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    base = unwrap(model)
    if getattr(base.config, "tie_word_embeddings", False):  # one tensor under two names: save_pretrained keeps one
        head = base.get_output_embeddings()
        state = {k: v for k, v in state.items()
                 if not any(k == f"{name}.weight" for name, module in base.named_modules() if module is head)}
    return state
