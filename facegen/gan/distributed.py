"""Data-parallel training under `torchrun`: one process per GPU (NCCL) or per CPU worker (gloo)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist


@contextlib.contextmanager
def distributed(device: torch.device) -> Iterator[tuple[int, torch.device]]:
    """Yield ``(rank, device)``. Started by torchrun (WORLD_SIZE > 1), join the process group for the block,
    each process on GPU ``LOCAL_RANK`` when ``device`` is CUDA; otherwise ``(0, device)`` unchanged."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        yield 0, device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield dist.get_rank(), device
    finally:
        dist.destroy_process_group()
