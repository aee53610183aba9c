"""Data-parallel training under ``torchrun`` (one process per core or GPU).

Every rank sees the same batch order and takes every ``world``-th batch; the model is wrapped
in ``torch.nn.parallel.DistributedDataParallel``, which averages gradients during the backward
pass (gloo on the CPU, nccl on CUDA), so all ranks keep identical weights. Rank 0 alone
evaluates, logs and writes files, and broadcasts its decisions (early stop, dev F1). Without
``WORLD_SIZE`` > 1 every method is a no-op and the model is used as it is.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


class DataParallel:
    """This process's place in a data-parallel run."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.enabled = world > 1
        self._owns_group = False

    @classmethod
    def from_env(cls, device: torch.device) -> DataParallel:
        """The run torchrun describes in the environment (``WORLD_SIZE``, ``RANK``,
        ``LOCAL_RANK``); joins the process group with the backend for ``device``."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        ctx = cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK",
                                                                               "0")))
        if device.type == "cuda":
            torch.cuda.set_device(ctx.local_rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            ctx._owns_group = True
        return ctx

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """Each rank's own GPU (by ``LOCAL_RANK``) when training on CUDA."""
        if self.enabled and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module to call for the training loss: ``model`` itself, or a DDP wrapper
        (which also broadcasts rank 0's weights to every rank)."""
        if not self.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def my_share(self, batches: list[list[int]]) -> list[list[int]]:
        """This rank's batches; every rank gets the same number (the remainder is dropped)."""
        if not self.enabled:
            return batches
        usable = len(batches) // self.world * self.world
        return batches[self.rank:usable:self.world]

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank."""
        return bool(self.broadcast_value(float(flag)))

    def broadcast_value(self, value: float) -> float:
        """Rank 0's ``value`` on every rank."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._device())
        dist.broadcast(t, src=0)
        return float(t)

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any (e.g. Ctrl-C reached one process)."""
        if not self.enabled:
            return flag
        t = torch.tensor([float(flag)], device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t)

    def _device(self) -> torch.device:
        # nccl reduces GPU tensors only
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def close(self, finished: bool = False) -> None:
        """Leave the process group; after a finished run, only once every rank is done
        (tearing gloo down while a peer is still in its last collective aborted a process
        with 'terminate called without an active exception' on a loaded machine)."""
        if self._owns_group:
            if finished:
                dist.barrier()
            dist.destroy_process_group()
            self._owns_group = False
