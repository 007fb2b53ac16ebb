"""The layers of a CNN in plain numpy, channels-last (NHWC) like the course: vectorized, no pixel loops.

Convolution and pooling see each output position's window through a strided *view* of the padded
input (`sliding_window_view`: no copy), then reduce it with one tensordot (a matrix product, so BLAS
does the work) or one max/mean. Weights use the Keras layout: conv [kh, kw, in, out], dense [in, out].
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Padding = int | str | Sequence[int] | Sequence[Sequence[int]]


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one dimension: output = ceil(size / stride)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding: Padding, hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                    dilation: tuple[int, int] = (1, 1)) -> tuple[tuple[int, int], tuple[int, int]]:
    """int | (ph, pw) | ((top, bottom), (left, right)) | 'same' | 'valid' -> ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            return tuple(same_padding(hw[i], kernel[i], stride[i], dilation[i]) for i in range(2))  # type: ignore
        raise ValueError(f"padding must be an int, a pair, 'same' or 'valid', not '{padding}'")
    if np.isscalar(padding):
        return (int(padding),) * 2, (int(padding),) * 2
    ph, pw = padding  # type: ignore[misc]
    return (_pair(ph) if not np.isscalar(ph) else (int(ph), int(ph)),
            _pair(pw) if not np.isscalar(pw) else (int(pw), int(pw)))


def pad_hw(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], value: float = 0.0) -> np.ndarray:
    """Pad the H and W axes of an NHWC array (a no-op returning `x` itself when there is no padding)."""
    if not any(pads[0]) and not any(pads[1]):
        return x
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int] = (1, 1)) -> np.ndarray:
    """A read-only view [N, Ho, Wo, C, kh, kw] of every (strided, dilated) kernel window of NHWC `x`."""
    kh, kw = kernel
    eh, ew = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1  # the dilated window's extent
    v = sliding_window_view(x, (eh, ew), axis=(1, 2))                # [N, H-eh+1, W-ew+1, C, eh, ew]
    return v[:, ::stride[0], ::stride[1], :, ::dilation[0], ::dilation[1]]


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: int | Sequence[int] = 1,
           padding: Padding = 0, dilation: int | Sequence[int] = 1, groups: int = 1) -> np.ndarray:
    """2-D convolution (cross-correlation, as in every framework) of NHWC `x` with HWIO `w`.

    `w` is [kh, kw, C_in / groups, C_out]; `padding` may be 'same' (TensorFlow's rule, asymmetric
    at stride 2) or 'valid'. Returns [N, Ho, Wo, C_out].
    """
    kh, kw, cin_g, cout = w.shape
    stride, dilation = _pair(stride), _pair(dilation)
    if x.shape[-1] != cin_g * groups:
        raise ValueError(f"conv2d: input has {x.shape[-1]} channels, weights expect {cin_g * groups}")
    x = pad_hw(x, resolve_padding(padding, x.shape[1:3], (kh, kw), stride, dilation))
    win = windows(x, (kh, kw), stride, dilation)                     # [N, Ho, Wo, C, kh, kw], a view
    if groups == 1:
        # one matrix product: the (copied) im2col matrix [N*Ho*Wo, kh*kw*C] times [kh*kw*C, C_out];
        # ordering a window as (kh, kw, C) copies runs of C contiguous values (measured 1.6x faster)
        out = np.tensordot(win.transpose(0, 1, 2, 4, 5, 3), w, axes=([3, 4, 5], [0, 1, 2]))
    elif cin_g == 1 and cout == groups:
        # depthwise: each channel with its own kernel; sum over the kh*kw offsets (not over pixels)
        out = np.einsum("nhwcij,ijc->nhwc", win, w[:, :, 0, :], optimize=True)
    else:
        n, ho, wo = win.shape[:3]
        g = win.reshape(n, ho, wo, groups, cin_g, kh, kw)
        out = np.einsum("nhwgcij,ijcgo->nhwgo", g, w.reshape(kh, kw, cin_g, groups, cout // groups),
                        optimize=True).reshape(n, ho, wo, cout)
    if b is not None:
        out += b
    return out


def conv3x3_same(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The course exercise: 3x3 convolution, stride 1, zero 'same' padding, on one [H, W, C] image."""
    return conv2d(x[None], w, b, 1, 1)[0]


def _pool_windows(x: np.ndarray, size: int | Sequence[int], stride: int | Sequence[int] | None,
                  padding: int | Sequence[int], fill: float) -> np.ndarray:
    kernel = _pair(size)
    stride = kernel if stride is None else _pair(stride)
    ph, pw = _pair(padding)
    return windows(pad_hw(x, ((ph, ph), (pw, pw)), fill), kernel, stride)


def max_pool2d(x: np.ndarray, size: int | Sequence[int] = 2, stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0) -> np.ndarray:
    """Max pooling of NHWC `x` (stride defaults to the size; padding counts as -inf, like PyTorch)."""
    n, h, w, c = x.shape
    k = _pair(size)
    if (stride is None or _pair(stride) == k) and not any(_pair(padding)) and h % k[0] == 0 and w % k[1] == 0:
        return x.reshape(n, h // k[0], k[0], w // k[1], k[1], c).max(axis=(2, 4))  # tiles: no window view
    return _pool_windows(x, size, stride, padding, -np.inf).max(axis=(4, 5))


def maxpool2x2(x: np.ndarray) -> np.ndarray:
    """The course exercise: 2x2 max pooling with stride 2 on one [H, W, C] image."""
    return max_pool2d(x[None], 2, 2)[0]


def avg_pool2d(x: np.ndarray, size: int | Sequence[int] = 2, stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0, count_include_pad: bool = True) -> np.ndarray:
    """Average pooling of NHWC `x`; zero padding counts in the divisor unless count_include_pad=False."""
    total = _pool_windows(x, size, stride, padding, 0.0).sum(axis=(4, 5))
    if count_include_pad or not any(_pair(padding)):
        return total / (_pair(size)[0] * _pair(size)[1])
    ones = np.ones((1, *x.shape[1:3], 1), x.dtype)
    return total / _pool_windows(ones, size, stride, padding, 0.0).sum(axis=(4, 5))


def adaptive_avg_pool2d(x: np.ndarray, output_size: int | Sequence[int]) -> np.ndarray:
    """PyTorch's adaptive average pooling: cell i covers rows floor(i*H/out) .. ceil((i+1)*H/out)."""
    (oh, ow), (n, h, w, c) = _pair(output_size), x.shape
    if (oh, ow) == (1, 1):
        return x.mean(axis=(1, 2), keepdims=True)
    if h % oh == 0 and w % ow == 0:
        return x.reshape(n, oh, h // oh, ow, w // ow, c).mean(axis=(2, 4))
    out = np.empty((n, oh, ow, c), x.dtype)
    for i in range(oh):  # a loop over the (few) output cells, for sizes that do not divide evenly
        r0, r1 = (i * h) // oh, -((-(i + 1) * h) // oh)
        for j in range(ow):
            c0, c1 = (j * w) // ow, -((-(j + 1) * w) // ow)
            out[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return out


def adaptive_max_pool2d(x: np.ndarray, output_size: int | Sequence[int]) -> np.ndarray:
    """PyTorch's adaptive max pooling (same cells as `adaptive_avg_pool2d`)."""
    (oh, ow), (n, h, w, c) = _pair(output_size), x.shape
    if h % oh == 0 and w % ow == 0:
        return x.reshape(n, oh, h // oh, ow, w // ow, c).max(axis=(2, 4))
    out = np.empty((n, oh, ow, c), x.dtype)
    for i in range(oh):
        r0, r1 = (i * h) // oh, -((-(i + 1) * h) // oh)
        for j in range(ow):
            c0, c1 = (j * w) // ow, -((-(j + 1) * w) // ow)
            out[:, i, j] = x[:, r0:r1, c0:c1].max(axis=(1, 2))
    return out


def global_avg_pool(x: np.ndarray) -> np.ndarray:
    """NHWC [N, H, W, C] -> [N, C], the mean over all positions."""
    return x.mean(axis=(1, 2))


def dense(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """A fully connected layer: x [N, in] @ w [in, out] + b (Keras layout; PyTorch's weight is w.T)."""
    out = x @ w
    return out + b if b is not None else out


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 6)


def leaky_relu(x: np.ndarray, slope: float = 0.01) -> np.ndarray:
    return np.where(x >= 0, x, x * slope)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), computed without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """x * Phi(x), Phi the standard normal CDF (exact, via erf), or PyTorch's tanh approximation."""
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    from scipy.special import erf  # scipy comes with scikit-image/scikit-learn
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))  # python floats keep float32 arrays float32


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax: subtracting the max first keeps exp() from overflowing."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def flatten(x: np.ndarray) -> np.ndarray:
    """[N, ...] -> [N, prod(...)] in this array's own (NHWC) order; see `nhwc_dense_weights`."""
    return x.reshape(len(x), -1)


def nhwc_dense_weights(weight: np.ndarray, chw: Sequence[int]) -> np.ndarray:
    """A PyTorch Linear weight [out, C*H*W] that follows an NCHW flatten -> Keras [H*W*C, out] for NHWC.

    PyTorch flattens feature maps channel-first, numpy here flattens them channel-last, so the same
    neuron sits at a different column: permute the columns once instead of transposing every input.
    """
    c, h, w = chw
    return weight.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)


def batch_norm(x: np.ndarray, mean: np.ndarray, var: np.ndarray, gamma: np.ndarray | None = None,
               beta: np.ndarray | None = None, eps: float = 1e-5) -> np.ndarray:
    """Batch normalization in inference form over the last (channel) axis: a per-channel affine map."""
    scale, shift = batch_norm_affine(mean, var, gamma, beta, eps)
    return x * scale + shift


def batch_norm_affine(mean: np.ndarray, var: np.ndarray, gamma: np.ndarray | None = None,
                      beta: np.ndarray | None = None, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) with BN(x) = x * scale + shift, from the running statistics."""
    scale = (1.0 if gamma is None else gamma) / np.sqrt(var + eps)
    shift = (0.0 if beta is None else beta) - mean * scale
    return np.asarray(scale, dtype=mean.dtype), np.asarray(shift, dtype=mean.dtype)
