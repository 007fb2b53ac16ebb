"""Run a Classifier's forward pass with numpy only, to check that we understand every layer.

`compile_numpy(model)` follows the network's forward (torch.fx: nn.Sequential stacks, residual adds,
EfficientNet blocks), turns each layer into a numpy function over NHWC arrays with its weights
converted once (conv OIHW -> HWIO, dense [out,in] -> [in,out], BN -> scale and shift), and refuses a
layer it cannot run with one sentence naming it. `numpy_forward(model, x)` runs it batch by batch.
"""
from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import CnnlabError
from . import numpy_ops as ops

SUPPORTED = ("Conv2d (any kernel/stride/padding/dilation/groups, 'same'), Linear, BatchNorm1d/2d, ReLU, "
             "ReLU6, LeakyReLU, GELU, Tanh, Sigmoid, Softmax, MaxPool2d, AvgPool2d, AdaptiveAvg/MaxPool2d, Flatten, "
             "Dropout, Identity, residual adds, channel zero-padding and strided slicing")


@dataclass
class _Flat:
    """A feature map flattened in NHWC order; `chw` remembers its NCHW shape for the next Linear."""

    array: np.ndarray
    chw: tuple[int, int, int]

    def nchw(self) -> np.ndarray:
        """The same values in PyTorch's (NCHW) flatten order."""
        c, h, w = self.chw
        return self.array.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(len(self.array), -1)


def _nchw_flat(v: Any) -> Any:
    return v.nchw() if isinstance(v, _Flat) else v


def _np(t: torch.Tensor | None, dtype: np.dtype) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy().astype(dtype)


class _Tracer(fx.Tracer):
    """torch.fx tracer that keeps every layer we know how to run (incl. Conv2d subclasses) as one call."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, qualname)


# -- modules -> numpy functions -------------------------------------------------------------------

def _conv(m: nn.Conv2d, dtype: np.dtype) -> Callable:
    if getattr(m, "padding_mode", "zeros") != "zeros":
        raise NotImplementedError(f"padding_mode='{m.padding_mode}'")
    w = _np(m.weight, dtype).transpose(2, 3, 1, 0).copy()  # OIHW -> HWIO
    b = _np(m.bias, dtype)
    from ..models.layers import Conv2dSame
    padding: Any = "same" if isinstance(m, Conv2dSame) or m.padding == "same" else \
        ((m.padding[0],) * 2, (m.padding[1],) * 2) if m.padding != "valid" else 0
    if m.padding == "same" and not isinstance(m, Conv2dSame):
        # PyTorch's own padding='same' (stride 1): the extra pixel of an even kernel goes after
        padding = "torch-same"

    def conv(x: np.ndarray) -> np.ndarray:
        pad = padding
        if pad == "torch-same":
            pad = tuple((lambda t: (t // 2, t - t // 2))(m.dilation[i] * (m.kernel_size[i] - 1)) for i in range(2))
        return ops.conv2d(x, w, b, m.stride, pad, m.dilation, m.groups)
    return conv


def _linear(m: nn.Linear, dtype: np.dtype) -> Callable:
    w, b = _np(m.weight, dtype), _np(m.bias, dtype)
    wt, permuted = w.T.copy(), {}

    def linear(x: Any) -> np.ndarray:
        if isinstance(x, _Flat):  # an NHWC-flattened map: permute the weight columns once, not the data
            if x.chw not in permuted:
                permuted[x.chw] = ops.nhwc_dense_weights(w, x.chw)
            return ops.dense(x.array, permuted[x.chw], b)
        if x.ndim == 4:  # Linear over the channel axis of a map (rare): NCHW's last axis is W
            raise NotImplementedError("a Linear applied to a 4-D feature map")
        return ops.dense(x, wt, b)
    return linear


def _batchnorm(m: nn.modules.batchnorm._BatchNorm, dtype: np.dtype) -> Callable:
    if m.running_mean is None:
        raise NotImplementedError("BatchNorm without running statistics (track_running_stats=False)")
    scale, shift = ops.batch_norm_affine(_np(m.running_mean, np.float64), _np(m.running_var, np.float64),
                                         _np(m.weight, np.float64), _np(m.bias, np.float64), m.eps)
    scale, shift = scale.astype(dtype), shift.astype(dtype)
    return lambda x: _nchw_flat(x) * scale + shift


def _maxpool(m: nn.MaxPool2d, dtype: np.dtype) -> Callable:
    if m.ceil_mode or m.dilation not in (1, (1, 1)):
        raise NotImplementedError("MaxPool2d with ceil_mode or dilation")
    return lambda x: ops.max_pool2d(x, m.kernel_size, m.stride, m.padding)


def _avgpool(m: nn.AvgPool2d, dtype: np.dtype) -> Callable:
    if m.ceil_mode or m.divisor_override:
        raise NotImplementedError("AvgPool2d with ceil_mode or divisor_override")
    return lambda x: ops.avg_pool2d(x, m.kernel_size, m.stride, m.padding, m.count_include_pad)


def _softmax(dim: int | None) -> Callable:
    def softmax(x: Any) -> np.ndarray:
        x = _nchw_flat(x)
        if x.ndim != 2 or dim not in (1, -1):
            raise NotImplementedError("softmax over anything but the class axis of [N, C] scores")
        return ops.softmax(x, axis=-1)
    return softmax


def _flatten_fn(start: int = 1, end: int = -1) -> Callable:
    def flatten(x: Any) -> Any:
        if isinstance(x, _Flat) or x.ndim == 2:
            return x
        if start != 1 or end != -1:
            raise NotImplementedError(f"flatten(start_dim={start}, end_dim={end})")
        if x.ndim == 4:
            return _Flat(ops.flatten(x), (x.shape[3], x.shape[1], x.shape[2]))
        return ops.flatten(x)
    return flatten


def _adaptive_avg(x: np.ndarray, size: Any) -> np.ndarray:
    size = (size, size) if isinstance(size, int) or size is None else tuple(size)
    return ops.adaptive_avg_pool2d(x, tuple(x.shape[1 + i] if s is None else s for i, s in enumerate(size)))


def _adaptive_max(x: np.ndarray, size: Any) -> np.ndarray:
    size = (size, size) if isinstance(size, int) or size is None else tuple(size)
    return ops.adaptive_max_pool2d(x, tuple(x.shape[1 + i] if s is None else s for i, s in enumerate(size)))


def _elementwise(fn: Callable) -> Callable:
    return lambda x: fn(_nchw_flat(x))


_MODULES: dict[type, Callable[[Any, np.dtype], Callable]] = {
    nn.Conv2d: _conv,
    nn.Linear: _linear,
    nn.BatchNorm2d: _batchnorm,
    nn.BatchNorm1d: _batchnorm,
    nn.MaxPool2d: _maxpool,
    nn.AvgPool2d: _avgpool,
    nn.AdaptiveAvgPool2d: lambda m, d: (lambda x: _adaptive_avg(x, m.output_size)),
    nn.AdaptiveMaxPool2d: lambda m, d: (lambda x: _adaptive_max(x, m.output_size)),
    nn.ReLU: lambda m, d: _elementwise(ops.relu),
    nn.GELU: lambda m, d: _elementwise(lambda x: ops.gelu(x, m.approximate)),
    nn.ReLU6: lambda m, d: _elementwise(ops.relu6),
    nn.LeakyReLU: lambda m, d: _elementwise(lambda x: ops.leaky_relu(x, m.negative_slope)),
    nn.Tanh: lambda m, d: _elementwise(ops.tanh),
    nn.Sigmoid: lambda m, d: _elementwise(ops.sigmoid),
    nn.Softmax: lambda m, d: _softmax(m.dim),
    nn.Flatten: lambda m, d: _flatten_fn(m.start_dim, m.end_dim),
    nn.Dropout: lambda m, d: (lambda x: x),
    nn.Identity: lambda m, d: (lambda x: x),
}
_LEAVES = tuple(_MODULES)


def _module_fn(m: nn.Module, dtype: np.dtype) -> Callable:
    for kind in type(m).__mro__:
        if kind in _MODULES:
            return _MODULES[kind](m, dtype)
    raise KeyError(type(m).__name__)


# -- functions and tensor methods -> numpy ----------------------------------------------------------

def _to_nhwc_index(idx: Any, ndim: int) -> Any:
    """An NCHW index (e.g. x[:, :, ::2, ::2]) -> the same index on the NHWC array."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    if ndim != 4 or any(i is Ellipsis or i is None for i in idx):
        raise NotImplementedError(f"indexing a feature map with {idx}")
    idx = tuple(idx) + (slice(None),) * (4 - len(idx))
    return idx[0], idx[2], idx[3], idx[1]


def _pad(x: Any, pad: Sequence[int], mode: str = "constant", value: float | None = 0.0) -> np.ndarray:
    """F.pad on an NCHW tensor: (left, right, top, bottom, front, back) -> NHWC np.pad."""
    if mode != "constant" or x.ndim != 4 or len(pad) % 2:
        raise NotImplementedError(f"F.pad(mode={mode!r}) of a {x.ndim}-D value")
    pad = list(pad) + [0] * (8 - len(pad))
    w, h, c, n = (pad[0:2], pad[2:4], pad[4:6], pad[6:8])
    return np.pad(x, (tuple(n), tuple(h), tuple(w), tuple(c)), constant_values=value or 0.0)


def _shape(x: Any) -> tuple[int, ...]:
    """The PyTorch (NCHW) shape of a numpy value."""
    if isinstance(x, _Flat):
        return x.array.shape
    return (x.shape[0], x.shape[3], x.shape[1], x.shape[2]) if x.ndim == 4 else x.shape


def _reshape(x: Any, *shape: Any) -> Any:
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    if len(shape) == 2 and shape[0] in (len(x.array) if isinstance(x, _Flat) else x.shape[0], -1):
        return _flatten_fn()(x)
    raise NotImplementedError(f"reshape to {shape}")


def _mean(x: Any, dim: Any = None, keepdim: bool = False, **_: Any) -> np.ndarray:
    dims = tuple(sorted(d % 4 for d in (dim if isinstance(dim, (tuple, list)) else [dim]))) if dim is not None else None
    if x.ndim == 4 and dims == (2, 3):
        return x.mean(axis=(1, 2), keepdims=keepdim)
    raise NotImplementedError(f"mean over dims {dim}")


def _cat(xs: Sequence[Any], dim: int = 0) -> np.ndarray:
    if all(x.ndim == 4 for x in xs) and dim % 4 == 1:
        return np.concatenate(xs, axis=3)
    if all(x.ndim == 2 for x in xs) and dim % 2 == 1:
        return np.concatenate([_nchw_flat(x) for x in xs], axis=1)
    raise NotImplementedError(f"torch.cat along dim {dim}")


def _binary(op: Callable) -> Callable:
    def fn(a: Any, b: Any, **kw: Any) -> Any:
        a, b = _nchw_flat(a), _nchw_flat(b)
        if isinstance(b, torch.Tensor) or isinstance(a, torch.Tensor):
            raise NotImplementedError("arithmetic with a constant tensor")
        if "alpha" in kw:
            b = b * kw["alpha"]
        return op(a, b)
    return fn


_FUNCTIONS: dict[Any, Callable] = {
    operator.add: _binary(operator.add), torch.add: _binary(operator.add), operator.iadd: _binary(operator.add),
    operator.sub: _binary(operator.sub), torch.sub: _binary(operator.sub),
    operator.mul: _binary(operator.mul), torch.mul: _binary(operator.mul),
    operator.truediv: _binary(operator.truediv),
    torch.flatten: lambda x, start_dim=0, end_dim=-1: _flatten_fn(start_dim, end_dim)(x),
    F.relu: lambda x, inplace=False: _elementwise(ops.relu)(x), torch.relu: _elementwise(ops.relu),
    F.gelu: lambda x, approximate="none": ops.gelu(_nchw_flat(x), approximate),
    F.relu6: lambda x, inplace=False: _elementwise(ops.relu6)(x),
    F.hardtanh: lambda x, min_val=-1.0, max_val=1.0, inplace=False: np.clip(_nchw_flat(x), min_val, max_val),
    torch.tanh: _elementwise(ops.tanh), F.tanh: _elementwise(ops.tanh),
    torch.sigmoid: _elementwise(ops.sigmoid), F.sigmoid: _elementwise(ops.sigmoid),
    F.softmax: lambda x, dim=None, _stacklevel=3, dtype=None: _softmax(dim)(x),
    torch.softmax: lambda x, dim=None, dtype=None: _softmax(dim)(x),
    F.max_pool2d: lambda x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False:
        ops.max_pool2d(x, kernel_size, stride or None, padding),
    F.avg_pool2d: lambda x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
        divisor_override=None: ops.avg_pool2d(x, kernel_size, stride or None, padding, count_include_pad),
    F.adaptive_avg_pool2d: lambda x, output_size: _adaptive_avg(x, output_size),
    torch.mean: _mean,
    torch.cat: _cat,
    F.pad: _pad,
    operator.getitem: lambda x, idx: x[idx] if isinstance(x, (tuple, list, torch.Size)) else
        x[_to_nhwc_index(idx, x.ndim)],
    getattr: lambda x, name: _attribute(x, name),
}

_METHODS: dict[str, Callable] = {
    "flatten": lambda x, start_dim=0, end_dim=-1: _flatten_fn(start_dim, end_dim)(x),
    "view": _reshape, "reshape": _reshape,
    "size": lambda x, dim=None: _shape(x) if dim is None else _shape(x)[dim],
    "mean": _mean,
    "relu": _elementwise(ops.relu),
    "sigmoid": _elementwise(ops.sigmoid),
    "tanh": _elementwise(ops.tanh),
    "softmax": lambda x, dim=None: _softmax(dim)(x),
    "contiguous": lambda x, *a, **k: x,
    "add": _binary(operator.add), "mul": _binary(operator.mul),
}


def _attribute(x: Any, name: str) -> Any:
    if name != "shape":
        raise NotImplementedError(f"the tensor attribute .{name}")
    return _shape(x)


def _function_name(target: Any) -> str:
    return getattr(target, "__name__", str(target))


# -- the program ------------------------------------------------------------------------------------

@dataclass
class NumpyProgram:
    """A Classifier turned into numpy: normalization, then one numpy call per traced layer."""

    name: str
    mean: np.ndarray
    std: np.ndarray
    steps: list[tuple[str, Callable, tuple, dict]] = field(default_factory=list)
    output: Any = None
    dtype: np.dtype = np.float32
    input_name: str | None = None

    def layer_names(self) -> list[str]:
        return [s[0] for s in self.steps]

    def __call__(self, x_nhwc: np.ndarray) -> np.ndarray:
        """[N, H, W, 3] images in [0, 1] -> logits [N, classes] (numpy only)."""
        env: dict[str, Any] = {self.input_name: (x_nhwc.astype(self.dtype, copy=False) - self.mean) / self.std}

        def value(a: Any) -> Any:
            if isinstance(a, fx.Node):
                return env[a.name]
            if isinstance(a, (tuple, list)):
                return type(a)(value(v) for v in a)
            if isinstance(a, dict):
                return {k: value(v) for k, v in a.items()}
            if isinstance(a, slice):
                return slice(value(a.start), value(a.stop), value(a.step))
            return a

        for name, fn, args, kwargs in self.steps:
            env[name] = fn(*value(args), **value(kwargs))
        return np.asarray(_nchw_flat(value(self.output)), dtype=self.dtype)


def compile_numpy(model: nn.Module, dtype: np.dtype | type = np.float32) -> NumpyProgram:
    """Trace `model` (a Classifier, or a bare network taking normalized NCHW input) into numpy steps.

    Raises CnnlabError naming the first layer it cannot run.
    """
    net = getattr(model, "net", model)
    name = getattr(model, "name", type(net).__name__)
    was_training = net.training
    net.eval()  # the inference form: BN from running statistics, no dropout, no drop-path
    try:
        graph = _Tracer().trace(net)
    except Exception as e:  # noqa: BLE001 - any tracing failure becomes one sentence for the user
        raise CnnlabError(f"numpy_forward cannot follow the forward() of model '{name}' ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:120]}); it runs nn.Sequential stacks and forwards without "
                          "data-dependent Python branches.") from None
    finally:
        net.train(was_training)
    modules = dict(net.named_modules())
    mean = _np(getattr(model, "mean", torch.zeros(1, 3, 1, 1)), dtype).transpose(0, 2, 3, 1)
    std = _np(getattr(model, "std", torch.ones(1, 3, 1, 1)), dtype).transpose(0, 2, 3, 1)
    prog = NumpyProgram(name, mean, std, dtype=np.dtype(dtype))
    for node in graph.nodes:
        where = f"'{node.target}'" if node.op == "call_module" else f"'{node.name}'"
        try:
            if node.op == "placeholder":
                if prog.input_name is not None and not node.args:  # a second input without a default
                    raise NotImplementedError("a second input to forward()")
                prog.input_name = prog.input_name or node.name
                if node.name != prog.input_name:
                    prog.steps.append((node.name, _constant(node.args[0]), (), {}))
            elif node.op == "call_module":
                prog.steps.append((node.name, _module_fn(modules[node.target], dtype), node.args, node.kwargs))
            elif node.op == "call_function":
                if node.target not in _FUNCTIONS:
                    raise KeyError(_function_name(node.target))
                prog.steps.append((node.name, _FUNCTIONS[node.target], node.args, node.kwargs))
            elif node.op == "call_method":
                if node.target not in _METHODS:
                    raise KeyError(f"Tensor.{node.target}")
                prog.steps.append((node.name, _METHODS[node.target], node.args, node.kwargs))
            elif node.op == "output":
                prog.output = node.args[0]
            else:  # get_attr: a tensor constant used directly in forward
                raise KeyError(f"the tensor attribute '{node.target}'")
        except KeyError as e:
            raise CnnlabError(f"numpy_forward cannot run layer {where} ({e.args[0]}) of model '{name}'; it "
                              f"supports {SUPPORTED}.") from None
        except NotImplementedError as e:
            raise CnnlabError(f"numpy_forward cannot run layer {where} of model '{name}': {e} is not "
                              "supported.") from None
    return prog


def _constant(v: Any) -> Callable:
    return lambda: v


def _as_nhwc(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """A torch tensor is NCHW (cnnlab's convention); a numpy array is NHWC (the course's)."""
    if isinstance(x, torch.Tensor):
        if x.dim() != 4:
            raise CnnlabError(f"numpy_forward takes images as an [N, 3, H, W] tensor; got shape {tuple(x.shape)}.")
        return x.detach().cpu().permute(0, 2, 3, 1).numpy()
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise CnnlabError(f"numpy_forward takes images as an [N, H, W, 3] array; got shape {x.shape}.")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255
    return x


def numpy_forward(model: nn.Module, x: np.ndarray | torch.Tensor, *, batch_size: int = 100,
                  dtype: np.dtype | type = np.float32, probabilities: bool = False,
                  program: NumpyProgram | None = None) -> np.ndarray:
    """Logits [N, classes] of `model` computed with numpy only (PyTorch only supplies the weights).

    `x`: images in [0, 1]: a torch tensor [N, 3, H, W] (cnnlab's layout) or a numpy array
    [N, H, W, 3] (the course's; uint8 is scaled by 1/255). The model's own normalization is applied.
    `probabilities=True` returns the (numerically stable) softmax instead. Batches bound the memory
    of the im2col matrices.
    """
    prog = program or compile_numpy(model, dtype)
    xs = _as_nhwc(x)
    outs = [prog(xs[i:i + batch_size]) for i in range(0, len(xs), batch_size)]
    logits = np.concatenate(outs) if outs else np.zeros((0, 0), prog.dtype)
    return ops.softmax(logits, axis=1) if probabilities else logits

