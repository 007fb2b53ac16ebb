"""Data-parallel training under `torchrun --nproc-per-node N`: process group, rank-0 duties.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; `context()` joins the
process group (gloo on CPU, nccl on GPU) once. Every rank trains on its slice of each global
batch (see data.loader.TensorLoader); gradients are averaged by DistributedDataParallel, so the
optimizer steps match a single process with the same global batch. Rank 0 alone writes the run
directory and prints.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def context() -> DistContext:
    """This process's place in a torchrun launch (a single-process context without one)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    import torch.distributed as dist
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("CNNLAB_DDP_BACKEND") != "gloo" else "gloo"
        dist.init_process_group(backend=backend)
        atexit.register(_leave)  # an orderly exit: a group torn down by interpreter shutdown can abort()
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _leave() -> None:
    import torch.distributed as dist
    if not dist.is_initialized():
        return
    try:  # no rank tears the group down while another still talks to it (that abort()s), but never hang
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timedelta(seconds=60))
        else:
            dist.barrier()
    except Exception:  # noqa: BLE001 - a rank that already left: nothing to wait for
        pass
    finally:
        dist.destroy_process_group()


def broadcast(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's `obj` on every rank (for small Python objects such as an error message)."""
    if not ctx.active:
        return obj
    import torch.distributed as dist
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_ranks_ok(ok: bool, ctx: DistContext) -> bool:
    """True only if every rank says ok (so a failure on one stops all together instead of hanging)."""
    if not ctx.active:
        return ok
    import torch.distributed as dist
    t = torch.tensor([0 if ok else 1])
    dist.all_reduce(t)
    return int(t) == 0


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        import torch.distributed as dist
        dist.barrier()


def wrap(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """The model wrapped in DistributedDataParallel (the model itself when running alone)."""
    if not ctx.active:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, find_unused_parameters=False)
