"""Fast CPU inference: a tuned allocator and an inference twin of a network (BatchNorm folded into
the preceding convolution, channels_last memory), used by `Classifier.probabilities`/`predict`.

Why: measured on this project's 2-core machine, EfficientNet-Lite0 ran at ~8-25 images/s with
glibc's default allocator because every activation bigger than the mmap threshold (up to 32 MB) is
mmap'ed fresh and page-faulted in on each forward pass; keeping freed memory in the heap removes
those faults (see benchmarks/bench_foundation_inference.py for the figures). Folding BN removes one
full pass over every activation, and channels_last lets oneDNN run depthwise convolutions natively.
Gradient attacks and feature visualization run the same twin (`Classifier.frozen(fast=True)`): in eval
mode folding BN changes only the order of float operations, so input gradients are the same (to 1e-5
in float64; in float32 a pre-activation within rounding of 0 can fall on the other side of a ReLU).
Passes over many images go in cache-sized chunks (`chunk_size`).
"""
from __future__ import annotations

import copy
import ctypes
import os
import sys

import torch
from torch import nn

from .layout import to_channels_last

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_tuned: bool | None = None


def tune_allocator() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS after every large free.

    Process-wide and idempotent; set CNNLAB_TUNE_MALLOC=0 to leave the allocator alone. Returns whether
    the setting is in effect (False off glibc/Linux).
    """
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if os.environ.get("CNNLAB_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return _tuned
    try:
        libc = ctypes.CDLL("libc.so.6")
        limit = 1 << 30  # allocations up to 1 GiB come from the heap; up to 1 GiB of free top kept
        _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, limit)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, limit))
    except (OSError, AttributeError):  # musl, no libc.so.6: nothing to tune
        _tuned = False
    return _tuned


def release_memory() -> bool:
    """Hand freed heap memory back to the operating system now (glibc's malloc_trim).

    The counterpart of `tune_allocator` for long-lived processes that go idle (the explorer between
    requests): the kept memory makes busy periods fast, this returns it when the work is done.
    Returns False where there is nothing to call (not glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


#: Pixels (images x height x width) per forward+backward pass over many images (attacks, attributions):
#: passes whose activations stay in the CPU's caches ran 2-3x faster per image than one pass over 256
#: CIFAR images (benchmarks/RESULTS.md, attacks). Images are independent in eval mode, so the results are
#: the same (bit for bit on ResNet-20).
CHUNK_PIXELS = 49_152


def chunk_size(x: torch.Tensor) -> int:
    """Images per forward+backward pass for images like `x` [N,C,H,W]: at least 2; the whole batch off CPU."""
    if x.device.type != "cpu":
        return max(1, len(x))
    return max(2, CHUNK_PIXELS // (x.shape[-2] * x.shape[-1]))


def state_key(net: nn.Module) -> tuple | None:
    """Changes whenever a parameter or buffer is modified in place, replaced or moved; None when that
    cannot be tracked (tensors made under torch.inference_mode have no version counter)."""
    tensors = (*net.parameters(), *net.buffers())
    if any(t.is_inference() for t in tensors):
        return None
    return tuple((id(t), t._version, t.data_ptr(), t.dtype, t.device) for t in tensors)


def has_hooks(net: nn.Module, backward: bool = False) -> bool:
    """True when someone hooks a module, or all modules (a twin would silently skip their hook); with
    `backward`, backward hooks count too."""
    from torch.nn.modules import module as module_mod
    if getattr(module_mod, "_global_forward_hooks", None) or getattr(module_mod, "_global_forward_pre_hooks", None):
        return True
    return any(m._forward_hooks or m._forward_pre_hooks or (backward and (m._backward_hooks or m._backward_pre_hooks))
               for m in net.modules())


def inference_twin(net: nn.Module) -> nn.Module:
    """An eval-mode copy of `net` with BatchNorm folded into convolutions, in channels_last memory.

    Falls back to an unfolded copy when the network cannot be traced by torch.fx.
    """
    twin = copy.deepcopy(net).eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    try:
        twin = fold_batchnorm(twin)
    except Exception:  # noqa: BLE001 - untraceable control flow: keep BN, still fast enough
        pass
    return to_channels_last(twin)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Trace `net` and fold every eval-mode BatchNorm2d that directly follows a Conv2d into it."""
    import torch.fx as fx
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from .layers import Conv2dSame

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, Conv2dSame) or super().is_leaf_module(m, qualname)

    gm = fx.GraphModule(net, Tracer().trace(net))
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0]
        if not (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1
                and type(modules.get(src.target)) in (nn.Conv2d, Conv2dSame)):
            continue
        bn, conv = modules[node.target], modules[src.target]
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        fused = fuse_conv_bn_eval(conv.eval(), bn.eval())  # a copy of conv (same class) with folded weights
        parent, _, leaf = src.target.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, leaf, fused)
        modules[src.target] = fused
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm
