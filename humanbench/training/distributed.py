"""Process-group setup from the torchrun environment and the few collectives the harness uses.

A process is one rank of a run when ``WORLD_SIZE`` is set (by ``torchrun`` or by
:mod:`humanbench.training.launch`); it then joins the default process group with ``gloo`` on the
CPU and ``nccl`` on CUDA. Without ``WORLD_SIZE`` it runs alone and every collective is a no-op.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from humanbench.training.config import TrainingError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run and its device."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes checkpoints, logs and summaries."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise TrainingError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(device: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by the environment (if any) and pick this rank's device."""
    world = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(f"device {kind!r} requested but CUDA is not available")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        target = torch.device("cuda", torch.cuda.current_device())
    else:
        target = torch.device(kind)
    if world > 1 and not dist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise TrainingError(f"WORLD_SIZE={world} but {name} is not set; start the run with torchrun or "
                                    f"'humanbench train --nproc N'")
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo", rank=rank, world_size=world,
                                timeout=dt.timedelta(seconds=timeout_s))
    return DistInfo(rank, world, local_rank, local_world, target)


def shutdown() -> None:
    """Leave the process group (if joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank."""
    if _active():
        dist.barrier()


def all_gather(obj: Any) -> list[Any]:
    """Every rank's picklable ``obj``, in rank order."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's picklable ``obj`` in rank order on rank 0; None on the other ranks."""
    if not _active():
        return [obj]
    rank = dist.get_rank()
    out: list[Any] | None = [None] * dist.get_world_size() if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each value over all ranks (same keys, in the same order, on every rank)."""
    if not _active() or not values:
        return values
    names = list(values)
    stacked = torch.tensor([values[n] for n in names], dtype=torch.float64, device=device)
    dist.all_reduce(stacked)
    return dict(zip(names, (stacked / dist.get_world_size()).tolist()))


def broadcast_parameters(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if _active():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(module: nn.Module) -> None:
    """Average every parameter's gradient over the ranks in one flat all-reduce (missing grads count as zeros)."""
    if not _active():
        return
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
        offset += p.numel()
