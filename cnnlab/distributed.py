"""Several processes under `torchrun`: the process group, rank-0 duties, and work split by batches.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT (one node, or many with
`--nnodes N --rdzv-backend c10d --rdzv-endpoint HOST:PORT`); `context(device)` joins the process group
once, with the backend chosen from the device: NCCL for CUDA GPUs (each process on the GPU of its
LOCAL_RANK), gloo for the CPU.

Two ways of sharing work, both giving what one process gives:
  * training (DistributedDataParallel): every rank takes its rows of each global batch and the
    gradients are averaged, so the optimizer steps match one process with the same global batch;
  * evaluation, attack evaluation and feature extraction: every rank takes whole batches
    (`my_batches`: batch b goes to rank b mod world size), so each batch is computed exactly as one
    process computes it, and `gather_in_order` puts all ranks' results back in batch order on every rank.
Rank 0 alone writes files and prints.
"""
from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """This process's place among the processes of a launch: rank, how many, its rank on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def _dist() -> ModuleType:  # torch.distributed, imported when needed
    import torch.distributed as dist
    return dist


def context(device: torch.device | None = None) -> DistContext:
    """This process's place in a torchrun launch (a single-process context without one), joining the
    process group on the first call: NCCL when `device` is a CUDA GPU, gloo otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return current()
    dist = _dist()
    if not dist.is_initialized():
        if device is None:
            from .devices import resolve_device
            device = resolve_device("auto")
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL's collectives run on the current GPU
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)  # an orderly exit: a group torn down by interpreter shutdown can abort()
    return current()


def current() -> DistContext:
    """The context of the process group this process has joined (single-process when none)."""
    dist = _dist()
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _leave() -> None:
    dist = _dist()
    if not dist.is_initialized():
        return
    try:  # no rank tears the group down while another still talks to it (that abort()s), but never hang
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timedelta(seconds=60))
        else:
            dist.barrier()
    except Exception:  # noqa: BLE001, S110 - a rank that already left: nothing to wait for
        pass
    finally:
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    """Where the backend's tensors must live: the current GPU for NCCL, the CPU for gloo."""
    if _dist().get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's `obj` on every rank (for small Python objects such as an error message)."""
    if not ctx.active:
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def all_ranks_ok(ok: bool, ctx: DistContext) -> bool:
    """True only if every rank says ok (so a failure on one stops all together instead of hanging)."""
    if not ctx.active:
        return ok
    t = torch.tensor([0 if ok else 1], device=_collective_device())
    _dist().all_reduce(t)
    return int(t) == 0


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The sum of `t` over all ranks, on t's device (t itself when running alone)."""
    if not ctx.active:
        return t
    dev = _collective_device()
    out = t.to(dev, copy=True)
    _dist().all_reduce(out)
    return out.to(t.device)


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        _dist().barrier()


def wrap(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """The model wrapped in DistributedDataParallel (the model itself when running alone)."""
    if not ctx.active:
        return model
    from torch.nn.parallel import DistributedDataParallel
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)


def my_batches(n_batches: int, ctx: DistContext) -> range:
    """The batches this rank computes in evaluation-style work: b = rank, rank + world, ... (all alone)."""
    return range(ctx.rank, n_batches, ctx.world_size)


def batch_items(batches: Sequence[int], batch_size: int, n: int) -> list[int]:
    """The item indices of `batches` (batch b holds items b*batch_size .. (b+1)*batch_size - 1, the last
    batch fewer), in order: the images a rank takes, e.g. as `dataset.subset(batch_items(...))`."""
    return [i for b in batches for i in range(b * batch_size, min(n, (b + 1) * batch_size))]


def gather_in_order(items: Sequence[tuple[int, T]], ctx: DistContext) -> list[T]:
    """Every rank's (batch index, result) pairs, as the results of all ranks in batch order, on every rank
    (the items themselves, in order, when running alone). Results travel pickled: keep them on the CPU."""
    if not ctx.active:
        return [v for _, v in sorted(items, key=lambda kv: kv[0])]
    parts: list = [None] * ctx.world_size
    _dist().all_gather_object(parts, list(items))
    return [v for _, v in sorted((kv for part in parts for kv in part), key=lambda kv: kv[0])]
