"""Which device a network runs on: `resolve_device("auto" | "cpu" | "cuda" | "cuda:N" | "mps")`.

`auto` picks CUDA when present, else Apple's MPS, else the CPU. Asking for a device this machine does
not have is one clear sentence naming the option and what is available; nothing falls back silently.
"""
from __future__ import annotations

import torch

from .errors import CnnlabError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


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


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch.device named by `spec` (None and 'auto': the best available), or one clear error."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    have = ", ".join(available_devices())
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
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
        i = int(index) if index else torch.cuda.current_device()
        if i >= torch.cuda.device_count():
            raise CnnlabError(f"--device {spec}: this machine has {torch.cuda.device_count()} GPU(s), numbered "
                              f"0..{torch.cuda.device_count() - 1}; available: {have}.")
        return torch.device("cuda", i)
    raise CnnlabError(f"--device '{spec}' is unknown; choose one of {', '.join(DEVICE_CHOICES)} "
                      f"(available here: {have}).")


def device_of(module: torch.nn.Module) -> torch.device:
    """The device of a module's first buffer or parameter (the CPU for a module with neither)."""
    for t in module.buffers():
        return t.device
    for t in module.parameters():
        return t.device
    return torch.device("cpu")
