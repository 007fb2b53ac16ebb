"""From scratch: a numpy forward pass and an unfold-based Conv2d with its own backward, checked against PyTorch.

    from cnnlab.reference import numpy_forward, convert_to_unfold, scratch_check
    logits = numpy_forward(model, x)          # numpy only; agrees with model(x)
    n = convert_to_unfold(model.net)          # every eligible nn.Conv2d -> UnfoldConv2d
    scratch_check().table()                   # max errors, speed and memory ratios
"""
from . import numpy_ops
from .numpy_forward import NumpyProgram, compile_numpy, numpy_forward
from .unfold_conv import (UnfoldConv2d, UnfoldConv2dFunction, convert_to_unfold, ineligible_reason,
                          unfold_conv2d)

__all__ = ["numpy_ops", "numpy_forward", "compile_numpy", "NumpyProgram", "UnfoldConv2d",
           "UnfoldConv2dFunction", "unfold_conv2d", "convert_to_unfold", "ineligible_reason", "scratch_check",
           "ScratchReport"]


def __getattr__(name: str):
    if name in ("scratch_check", "ScratchReport"):
        from . import checks
        return getattr(checks, name)
    raise AttributeError(f"module 'cnnlab.reference' has no attribute {name!r}")
