"""Training on several processes: ``DistributedDataParallel`` under ``torchrun``.

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; each process (rank) trains on its own
shard of every batch, and DDP averages the gradients in its backward pass. A plain run is a world
of one, where nothing is wrapped and nothing is communicated. Every rank takes the same decisions
(the order of sources, when to stop, which epoch is best) from values they agree on, so that all
ranks train the same source at the same step and leave the loop together.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from typing import TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .errors import SeptoolError

T = TypeVar("T")


class Distributed:
    """The processes of a torchrun launch (``WORLD_SIZE`` > 1), or the single process of a plain run."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda" and device.index is None and self.world > 1:
            device = torch.device("cuda", self.local_rank)  # one GPU per process on each node
        if device.type == "cuda" and device.index is not None:
            torch.cuda.set_device(device)
        self.device = device
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        """Whether this process writes files and reports progress (rank 0)."""
        return self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` under DDP (its weights broadcast from rank 0, its gradients averaged in every
        backward pass); the module itself in a plain run or when it has nothing to train."""
        if self.world == 1 or not any(p.requires_grad for p in module.parameters()):
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def shard(self, plan: Sequence[T], step: int, batch: int) -> list[T]:
        """This rank's ``batch`` items of global batch ``step`` (``batch`` x world items) of ``plan``."""
        start = (step * self.world + self.rank) * batch
        return list(plan[start : start + batch])

    @staticmethod
    def no_sync(module: torch.nn.Module) -> contextlib.AbstractContextManager:
        """Accumulate ``module``'s gradients locally: the next synchronized backward averages the sum."""
        return module.no_sync() if isinstance(module, DistributedDataParallel) else contextlib.nullcontext()

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any process (so that every process stops at the same step)."""
        if self.world == 1:
            return flag
        value = torch.tensor([float(flag)], device=self.device)  # nccl reduces GPU tensors only
        dist.all_reduce(value, dist.ReduceOp.MAX)
        return bool(value.item())

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean over processes of each value (training losses, each read on a rank's shard)."""
        if self.world == 1 or not values:
            return values
        total = torch.tensor([values[k] for k in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return {k: float(v) / self.world for k, v in zip(values, total, strict=True)}

    def agree(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (validation losses, on which the stopping rule acts)."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, 0)
        return box[0]

    def check_in_step(self, modules: Iterable[torch.nn.Module]) -> None:
        """Refuse to write a model if the processes' weights have drifted apart."""
        if self.world == 1:
            return
        total = torch.stack([p.detach().double().sum() for m in modules for p in m.parameters()]).sum()
        total = total.to(self.device)
        low, high = total.clone(), total.clone()
        dist.all_reduce(low, dist.ReduceOp.MIN)
        dist.all_reduce(high, dist.ReduceOp.MAX)
        if not torch.isclose(low, high, rtol=1e-9, atol=1e-9):
            raise SeptoolError(f"distributed training diverged: weight sums range {float(low)} to {float(high)}")
