"""The process group of a run under ``torchrun`` (one process when ``WORLD_SIZE`` is unset or 1)."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Distributed"]


class Distributed:
    """Process-group facts from torchrun's environment; joins the group (gloo on CPU, NCCL on
    CUDA) when there are several processes."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            backend = "nccl" if device.startswith("cuda") else "gloo"
            dist.init_process_group(backend=backend)

    @property
    def main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0

    def device(self, name: str) -> torch.device:
        """The device this process trains on: ``cuda:LOCAL_RANK`` for CUDA under torchrun, else ``name``."""
        dev = torch.device(name if not name.startswith("cuda") or not self.enabled else f"cuda:{self.local_rank}")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return dev

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel when there are several processes, else itself."""
        return nn.parallel.DistributedDataParallel(module) if self.enabled else module

    def barrier(self) -> None:
        """Wait for every process (nothing with one process)."""
        if self.enabled:
            dist.barrier()

    def max_weight_difference(self, model: nn.Module) -> float | None:
        """The largest difference of a parameter between this process' replica and rank 0's
        (gathered from all; None with one process).  DDP keeps them equal: this checks it."""
        if not self.enabled:
            return None
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(self.world)]
        dist.all_gather(gathered, flat)
        return max(float((g - gathered[0]).abs().max()) for g in gathered)

    def close(self) -> None:
        """Leave the process group."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
