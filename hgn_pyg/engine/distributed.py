"""Multi-process training through ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node N -m hgn_pyg.train --config FILE`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR/PORT``; :func:`init_distributed`
reads them and joins the process group (``nccl`` on GPUs, ``gloo`` on CPU).
Without those variables everything runs in one process and every helper here is a
no-op.  Only rank 0 writes files; ``TRAIN.batch_size`` is per process.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist

from hgn_pyg.engine.build import resolve_device

__all__ = ["DistContext", "init_distributed", "cleanup"]

log = logging.getLogger(__name__)


@dataclass
class DistContext:
    """Where this process stands: ``rank``, ``world_size``, ``local_rank``, its ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """``obj`` of rank ``src`` on every rank (picklable objects)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum of ``tensor`` over ranks (returned; the input is not modified)."""
        if not self.enabled:
            return tensor
        t = tensor.detach().clone().to(self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.to(tensor.device)


def init_distributed(device_spec: str = "auto") -> DistContext:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=resolve_device(device_spec))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    log.debug("process group: rank %d/%d (%s) on %s", rank, world, backend, device)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device, enabled=True)


def cleanup(ctx: Optional[DistContext]) -> None:
    """Leave the process group (if one was joined)."""
    if ctx is not None and ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
