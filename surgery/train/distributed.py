"""Process-group setup for torchrun (NCCL on GPU, gloo on CPU); single-process runs need none."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Who this process is in the job and where its tensors live."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "cpu") -> DistContext:
    """Join the torchrun job described by the environment (WORLD_SIZE, RANK, LOCAL_RANK), if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    place = torch.device(device, local_rank) if device == "cuda" else torch.device(device)
    if device == "cuda":
        torch.cuda.set_device(place)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return DistContext(rank, world_size, local_rank, place)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def reduce_sum(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over all processes (evaluation counts)."""
    if ctx.distributed:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def broadcast_object(value: object, ctx: DistContext) -> object:
    """Rank 0's value on every rank (decisions such as prune masks must agree)."""
    if not ctx.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_rows(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Every process's rows (a CPU tensor) concatenated in rank order, on every rank (embeddings of a sharded split)."""
    if not ctx.distributed:
        return value
    parts: list[torch.Tensor | None] = [None] * ctx.world_size
    dist.all_gather_object(parts, value)
    return torch.cat([part for part in parts if part is not None])
