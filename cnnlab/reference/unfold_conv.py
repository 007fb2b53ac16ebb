"""A 2-D convolution built from unfold, fold and matrix products, with a hand-written backward.

With cols = unfold(X) (every K x K x C patch as a column, [N, C*K*K, L] for L output positions):

    forward   Y    = W @ cols + b                    W viewed as [C_out, C*K*K]
    backward  db   = sum of dY over batch and positions
              dW   = sum_n dY_n @ cols_n^T            (cols recomputed from X: see below)
              dX   = fold(W^T @ dY)                   fold adds each patch's gradient back where it came from

Memory: the unfolded matrix is K*K times the input (9x for 3x3), so the forward keeps only X and W
for backward and unfolds X again there; the only extra memory is one layer's cols and dcols while
that layer runs. `UnfoldConv2d` is an nn.Conv2d (same parameters, same state-dict keys) whose forward
uses this function; `convert_to_unfold(model)` swaps it in for every eligible nn.Conv2d.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CnnlabError

IntPair = tuple[int, int]


def _pair(v: int | tuple[int, ...]) -> IntPair:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """floor((size + 2P - K) / S) + 1 positions along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


class UnfoldConv2dFunction(torch.autograd.Function):
    """conv2d(x, weight, bias, stride, padding) with dilation 1 and groups 1, by unfold + matmul."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,  # noqa: ANN001
                stride: int | IntPair = 1, padding: int | IntPair = 0) -> torch.Tensor:
        stride, padding = _pair(stride), _pair(padding)
        n, c, h, w = x.shape
        cout, cin, kh, kw = weight.shape
        if c != cin:
            raise ValueError(f"UnfoldConv2d: input has {c} channels, the weight expects {cin}")
        ho, wo = output_size(h, kh, stride[0], padding[0]), output_size(w, kw, stride[1], padding[1])
        cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)           # [N, C*K*K, L]
        y = torch.matmul(weight.reshape(cout, -1), cols)                         # [N, C_out, L]
        del cols  # K*K times the input: never kept for backward
        if bias is not None:
            y += bias.view(1, -1, 1)
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, (h, w), bias is not None)
        return y.view(n, cout, ho, wo)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):  # noqa: ANN001, ANN205
        x, weight = ctx.saved_tensors
        stride, padding, (h, w), has_bias = ctx.conf
        cout, cin, kh, kw = weight.shape
        n = dy.shape[0]
        dy = dy.reshape(n, cout, -1)                                             # [N, C_out, L]
        dx = dw = db = None
        if has_bias and ctx.needs_input_grad[2]:
            db = dy.sum(dim=(0, 2))
        if ctx.needs_input_grad[1]:
            cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)       # recomputed, not stored
            # sum_n dY_n @ cols_n^T as ONE matrix product over all N*L positions
            dw = torch.tensordot(dy, cols, dims=([0, 2], [0, 2])).view_as(weight)
            del cols
        if ctx.needs_input_grad[0]:
            dcols = torch.matmul(weight.reshape(cout, -1).t(), dy)               # [N, C*K*K, L]
            dx = F.fold(dcols, (h, w), (kh, kw), padding=padding, stride=stride)
        return dx, dw, db, None, None


def unfold_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride: int | IntPair = 1, padding: int | IntPair = 0) -> torch.Tensor:
    """F.conv2d's signature (dilation 1, groups 1) computed by `UnfoldConv2dFunction`."""
    return UnfoldConv2dFunction.apply(x, weight, bias, stride, padding)


class UnfoldConv2d(nn.Conv2d):
    """A drop-in nn.Conv2d (same parameters and state-dict keys) whose forward and backward are ours."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | IntPair, stride: int | IntPair = 1,
                 padding: int | IntPair = 0, bias: bool = True, device=None, dtype=None) -> None:  # noqa: ANN001
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias, device=device,
                         dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return UnfoldConv2dFunction.apply(x, self.weight, self.bias, self.stride, self.padding)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "UnfoldConv2d":
        """The same layer, sharing `conv`'s weight and bias Parameters (so an optimizer keeps working)."""
        reason = ineligible_reason(conv)
        if reason:
            raise CnnlabError(f"This nn.Conv2d cannot become an UnfoldConv2d: it has {reason}.")
        padding = conv.padding
        if padding == "same":
            padding = tuple((k - 1) // 2 for k in conv.kernel_size)
        elif padding == "valid":
            padding = (0, 0)
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        for key in ("in_channels", "out_channels", "kernel_size", "stride", "dilation", "transposed",
                    "output_padding", "groups", "padding_mode"):
            setattr(new, key, getattr(conv, key))
        new.padding = tuple(padding)
        new._reversed_padding_repeated_twice = [p for p in reversed(new.padding) for _ in range(2)]
        new.register_parameter("weight", conv.weight)
        new.register_parameter("bias", conv.bias)
        new.train(conv.training)
        return new


def ineligible_reason(conv: nn.Conv2d) -> str | None:
    """Why `conv` cannot be computed by UnfoldConv2d (None when it can)."""
    from ..models.layers import Conv2dSame
    if conv.groups != 1:
        return f"groups={conv.groups} (a grouped or depthwise convolution)"
    if tuple(conv.dilation) != (1, 1):
        return f"dilation={tuple(conv.dilation)}"
    if conv.padding_mode != "zeros":
        return f"padding_mode='{conv.padding_mode}'"
    if isinstance(conv, Conv2dSame) or conv.padding == "same":
        odd = all(k % 2 for k in conv.kernel_size)
        if not (tuple(conv.stride) == (1, 1) and odd):
            return "TensorFlow 'same' padding that is asymmetric (stride 2 or an even kernel)"
    if conv.transposed:
        return "transposed=True"
    return None


def convert_to_unfold(module: nn.Module, strict: bool = False) -> int:
    """Swap every eligible nn.Conv2d inside `module` for an UnfoldConv2d in place; return how many.

    The new layers share the old weight and bias Parameters. Convolutions it cannot compute
    (grouped/depthwise, dilated, asymmetric 'same' padding) stay as they are, named in a warning,
    or raise CnnlabError with strict=True.
    """
    if isinstance(module, nn.Conv2d):
        raise CnnlabError("convert_to_unfold swaps the convolutions inside a model; pass the model that "
                          "contains this nn.Conv2d, not the layer itself.")
    converted, skipped = 0, []
    for parent_name, parent in list(module.named_modules()):
        for child_name, child in list(parent.named_children()):
            if not isinstance(child, nn.Conv2d) or isinstance(child, UnfoldConv2d):
                continue
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            reason = ineligible_reason(child)
            if reason:
                skipped.append(f"'{full}' ({reason})")
                continue
            setattr(parent, child_name, UnfoldConv2d.from_conv(child))
            converted += 1
    if skipped:
        msg = (f"convert_to_unfold kept {len(skipped)} convolution(s) as nn.Conv2d: "
               + ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "") + ".")
        if strict:
            raise CnnlabError(msg)
        warnings.warn(msg, stacklevel=2)
    return converted
