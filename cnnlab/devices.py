"""Which device a network runs on: `resolve_device("auto" | "cpu" | "cuda" | "cuda:N" | "mps")`, and in
which float format it computes: `resolve_precision("auto" | "fp32" | "bf16" | "fp16", device)`.

`auto` picks $CNNLAB_DEVICE when set (so `CNNLAB_DEVICE=cpu` keeps a GPU machine's notebooks and
tests on the CPU), else CUDA when present, else Apple's MPS, else the CPU. Under `torchrun` each
process takes the GPU of its LOCAL_RANK. Asking for a device or a format this machine does not have is
one clear sentence naming the option and what is available; nothing falls back silently.

Mixed precision (`autocast`) runs convolutions and matrix products in bf16 or fp16 and keeps the
weights, the loss and the optimizer in fp32; fp16's narrow range needs a gradient scaler
(`grad_scaler`), bf16's does not. `auto` is bf16 on GPUs that compute in it natively (NVIDIA compute
capability 8.0 and later), fp16 with a scaler on older NVIDIA GPUs, and fp32 on the CPU and MPS: on the
CPU bf16 autocast was measured slower than fp32 (benchmarks/results/device.md).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from .errors import CnnlabError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: What `auto` means when set: a device name as --device takes it (e.g. cpu, cuda:1).
DEVICE_ENV = "CNNLAB_DEVICE"
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def available_devices() -> list[str]:
    """The devices this process can use, e.g. ['cpu', 'cuda:0', 'cuda:1']."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        out.append("mps")
    return out


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def launcher_local_rank() -> int | None:
    """This process's LOCAL_RANK when `torchrun` started several processes (None otherwise)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "LOCAL_RANK" not in os.environ:
        return None
    return int(os.environ["LOCAL_RANK"])


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch.device named by `spec` (None and 'auto': $CNNLAB_DEVICE, else the best available), or
    one clear error. Under torchrun, 'cuda' (and 'auto' on a GPU machine) is the GPU of LOCAL_RANK."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto" and os.environ.get(DEVICE_ENV, "").strip():
        return resolve_device(os.environ[DEVICE_ENV])
    have = ", ".join(available_devices())
    local = launcher_local_rank()
    if text == "auto":
        if torch.cuda.is_available():
            return _cuda_device(spec, None, local, have)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise CnnlabError(f"--device mps needs Apple's Metal backend (macOS on Apple silicon), which this "
                              f"machine lacks; available: {have}.")
        return torch.device("mps")
    if text == "cuda" or text.startswith("cuda:"):
        index = text.partition(":")[2]
        if index and not index.isdigit():
            raise CnnlabError(f"--device {spec} is not a device; write cuda or cuda:N with N a GPU number.")
        if not torch.cuda.is_available():
            raise CnnlabError(f"--device {spec} needs a CUDA GPU, and this machine has none usable by torch "
                              f"(torch {torch.__version__}); available: {have}.")
        return _cuda_device(spec, int(index) if index else None, local, have)
    raise CnnlabError(f"--device '{spec}' is unknown; choose one of {', '.join(DEVICE_CHOICES)} "
                      f"(available here: {have}).")


def _cuda_device(spec: str | None, index: int | None, local: int | None, have: str) -> torch.device:
    count = torch.cuda.device_count()
    if local is not None:  # torchrun: one process per GPU of this node
        if index is not None:
            raise CnnlabError(f"--device {spec} names one GPU, but torchrun started "
                              f"{os.environ.get('LOCAL_WORLD_SIZE', 'several')} processes on this node; use "
                              "--device cuda, and each process takes the GPU of its LOCAL_RANK.")
        if local >= count:
            raise CnnlabError(f"torchrun started process LOCAL_RANK={local} on a node with {count} GPU(s); start at "
                              f"most {count} processes per node (--nproc-per-node {count}), or use --device cpu.")
        return torch.device("cuda", local)
    i = torch.cuda.current_device() if index is None else index
    if i >= count:
        raise CnnlabError(f"--device {spec}: this machine has {count} GPU(s), numbered "
                          f"0..{count - 1}; available: {have}.")
    return torch.device("cuda", i)


def device_of(module: torch.nn.Module) -> torch.device:
    """The device of a module's first buffer or parameter (the CPU for a module with neither)."""
    for t in module.buffers():
        return t.device
    for t in module.parameters():
        return t.device
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """The device and, for a GPU, its name: 'cpu', 'cuda:0 (NVIDIA H200)', 'mps'."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (GPU timings); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# -- float formats ------------------------------------------------------------------------------------

def _native_bf16(device: torch.device) -> bool:
    """NVIDIA GPUs compute in bf16 from compute capability 8.0 (Ampere) on; older ones only emulate it."""
    return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_precision(spec: str | None, device: torch.device) -> str:
    """'fp32', 'bf16' or 'fp16' for `spec` on `device` ('auto' or None: the device's default), or one
    clear error naming what this device offers."""
    text = (spec or "auto").strip().lower().replace("float32", "fp32").replace("float16", "fp16") \
        .replace("bfloat16", "bf16")
    if text not in PRECISIONS:
        raise CnnlabError(f"--precision '{spec}' is unknown; choose one of {', '.join(PRECISIONS)}.")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if text == "auto":
            return "bf16" if _native_bf16(device) else "fp16"
        if text == "bf16" and not _native_bf16(device):
            raise CnnlabError(f"--precision bf16: this GPU ({name}) does not compute in bf16; use fp16 (with a "
                              "gradient scaler) or fp32.")
        return text
    if device.type == "mps":
        return "fp32" if text == "auto" else text
    if text == "fp16":
        raise CnnlabError("--precision fp16 needs a GPU (CUDA or MPS) and this run is on the CPU; use fp32 (the "
                          "CPU's default) or bf16.")
    return "fp32" if text == "auto" else text


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed precision for the forward pass on `device` ('fp32': nothing changes)."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device.type, dtype=_DTYPES[precision]):
        yield


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """The gradient scaler fp16 needs (a disabled one, whose calls pass through, otherwise)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
