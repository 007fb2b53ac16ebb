"""channels_last memory format for a network, the layout cnnlab trains, attacks and explains in.

oneDNN (PyTorch's CPU convolutions, torch 2.14.1) corrupts the heap in the weight-gradient pass of a
channels_last 1x1 convolution with a stride and fewer than 16 input channels, and the process dies (seen on
an AVX-512 CPU: a small ResNet's downsampling shortcut, 8 of 12 one-epoch training runs). Such a convolution
equals a stride-1 1x1 convolution of every stride-th pixel, which is sound, so it runs that way.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


def subsampled_pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)` for an unpadded strided 1x1 convolution: a stride-1 convolution of every stride-th pixel."""
    sh, sw = conv.stride
    return F.conv2d(x[..., ::sh, ::sw], conv.weight, conv.bias, 1, 0, 1, conv.groups)


def crash_prone(m: nn.Module) -> bool:
    """A plain strided 1x1 Conv2d with fewer than 16 input channels (whose channels_last backward can crash)."""
    return (type(m) is nn.Conv2d and m.kernel_size == (1, 1) and m.stride != (1, 1)
            and m.padding in ((0, 0), "valid") and m.padding_mode == "zeros" and m.in_channels < 16)


def to_channels_last(net: nn.Module) -> nn.Module:
    """`net` (in place) in channels_last memory, its crash-prone convolutions rerouted to the same result.

    Parameters, state dict and module types stay as they were; copies and pickles keep the rerouting.
    """
    for m in net.modules():
        if crash_prone(m) and "forward" not in m.__dict__:
            m.forward = functools.partial(subsampled_pointwise, m)
    return net.to(memory_format=torch.channels_last)
