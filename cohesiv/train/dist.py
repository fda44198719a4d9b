"""Distributed training context: detect ``torchrun``, pick the device and backend, reduce scalars."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cohesiv.errors import CohesivError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 writes checkpoints and logs).
        world: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: this process' device.
        initialized: True when this process initialised the process group (and must destroy it).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world > 1


def pick_device(name: str | None, local_rank: int = 0) -> torch.device:
    """Return ``torch.device(name)``, or ``cuda:<local_rank>`` when CUDA is available and ``name`` is None, else CPU."""
    if name is None:
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CohesivError(f"device {name!r} requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def init_distributed(device: str | None = None, timeout_s: float = 600.0) -> DistContext:
    """Join the process group described by ``torchrun``'s environment (RANK, WORLD_SIZE, LOCAL_RANK).

    Without those variables (or with WORLD_SIZE=1) this is a single-process context. The backend
    is NCCL on CUDA and gloo on CPU; ``MASTER_ADDR``/``MASTER_PORT`` come from the environment
    (``env://``).

    Args:
        device: requested device (see :func:`pick_device`).
        timeout_s: collective timeout.

    Returns:
        The :class:`DistContext`.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = pick_device(device, local_rank)
    if world <= 1:
        return DistContext(0, 1, 0, dev, False)
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, False)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(
        backend=backend, init_method="env://", timeout=datetime.timedelta(seconds=timeout_s)
    )
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, True)


def all_mean(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Average a tensor over the processes (identity in a single-process run)."""
    if not ctx.distributed:
        return values
    v = values.detach().clone().to(ctx.device)
    dist.all_reduce(v, op=dist.ReduceOp.SUM)
    return v / ctx.world


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op in a single-process run)."""
    if ctx.distributed:
        dist.barrier()


def broadcast_object(ctx: DistContext, obj):
    """Return rank 0's ``obj`` on every process."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
