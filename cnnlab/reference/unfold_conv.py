"""A 2-D convolution built from unfold, fold and matrix products, with a hand-written backward.

With cols = unfold(X) (every K x K x C patch as a column, [N, C*K*K, L] for L output positions):

    forward   Y    = W @ cols + b                    W viewed as [C_out, C*K*K]
    backward  db   = sum of dY over batch and positions
              dW   = sum_n dY_n @ cols_n^T            (cols recomputed from X: see below)
              dX   = fold(W^T @ dY)                   fold adds each patch's gradient back where it came from

Memory: the unfolded matrix is K*K times the input (9x for 3x3), so the forward keeps only X and W
for backward and unfolds X again there; the only extra memory is reused buffers for one chunk of
images' columns (CHUNK_BYTES). Channels-last inputs (what `cnnlab train` uses) unfold into rows
[N*L, K*K*C] with C contiguous, so each product is one matrix multiply whose output is already
channels-last, and chunks are cache-sized; there dX of a stride-1 layer is computed as the same
unfold-and-multiply applied to dY padded by K-1-P with the kernel flipped in space (what fold(W^T dY)
adds up, without K*K scattered additions). `UnfoldConv2d` is an nn.Conv2d (same parameters, same
state-dict keys) whose forward uses this function; `convert_to_unfold(model)` swaps it in for every
eligible nn.Conv2d.
"""
from __future__ import annotations

import threading
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


#: At most this many bytes of unfolded columns exist at once: a batch is unfolded in chunks of images
#: (reused buffers), so the K*K-times-larger matrix never exists for a whole batch. 0 = whole batch.
#: Channels-last: cache-sized chunks are fastest (measured on a quiet 2-core machine, ResNet-20 step:
#: 4 MiB 1.8-2.0x native, 16 MiB 2.3x, 256 MiB 3.5x): the columns are written and read back while
#: still in cache. NCHW, the textbook layout, goes through F.fold and batched products whose per-call
#: cost makes small chunks slower (4.9x vs 0.7x of native NCHW), so it unfolds whole batches.
CHUNK_BYTES = 4 << 20
NCHW_CHUNK_BYTES = 256 << 20


_local = threading.local()


def _workspace(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """One buffer per thread, dtype and device, reused by every layer for its unfolded columns.

    Allocating a K*K-times-larger matrix per layer and freeing it again leaves the C allocator
    holding hundreds of MB (measured: 2.3x the native step's peak RSS instead of 1.2x).
    """
    cache = _local.__dict__.setdefault("buffers", {})
    numel = 1
    for d in shape:
        numel *= d
    key = (like.dtype, like.device, torch.is_inference_mode_enabled())  # inference tensors stay inside
    buf = cache.get(key)
    if buf is None or buf.numel() < numel:
        cache.pop(key, None)
        buf = cache[key] = like.new_empty(max(numel, 1))
    return buf[:numel].view(shape)


def release_workspace() -> None:
    """Free the reusable column and padding buffers of this thread (they are rebuilt on the next call)."""
    _local.__dict__.pop("buffers", None)
    _local.__dict__.pop("padded", None)


def _pad(x: torch.Tensor, padding: IntPair) -> torch.Tensor:
    return F.pad(x, (padding[1], padding[1], padding[0], padding[0])) if padding[0] or padding[1] else x


def _patches(xp: torch.Tensor, kernel: IntPair, stride: IntPair) -> torch.Tensor:
    """unfold: a strided view [N, C, Ho, Wo, kh, kw] of every kernel window of the padded input (no copy)."""
    return xp.unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])


def _chunks(n: int, per_item: int, chunk_bytes: int) -> list[slice]:
    """Consecutive slices of the batch, each unfolding to at most `chunk_bytes` (at least one image)."""
    step = max(n, 1) if chunk_bytes <= 0 else max(1, min(n, chunk_bytes // max(per_item, 1)))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _columns(patches: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """The im2col matrix [n, C*kh*kw, Ho*Wo] of a patch view (one copy, in the order W.view(C_out, -1) uses)."""
    n, c, ho, wo, kh, kw = patches.shape
    cols = patches.permute(0, 1, 4, 5, 2, 3)
    if out is None:
        return cols.reshape(n, c * kh * kw, ho * wo)
    out = out[:n]
    out.view(n, c, kh, kw, ho, wo).copy_(cols)
    return out


_onednn_linear = None  # resolved on first use: torch.ops.mkldnn._linear_pointwise, or False


def _mm_nt(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a @ b.T (+ bias), a new [M, N] tensor: the matrix product every step here is made of.

    float32 on the CPU goes to oneDNN's matmul when PyTorch has it: on AVX-512 AMD CPUs (this
    project's machines) MKL's sgemm, behind torch.mm, runs its AVX2 code at about half the rate
    (measured 150-200 vs 300-450 GFLOP/s on these shapes). Anything else uses torch.mm.
    """
    global _onednn_linear
    if _onednn_linear is None:
        _onednn_linear = _probe_onednn_linear()
    if _onednn_linear and a.dtype == torch.float32 and a.device.type == "cpu" and b.dtype == torch.float32:
        return _onednn_linear(a, b, bias, "none", [], "")
    out = a @ b.t()
    return out.add_(bias) if bias is not None else out


def _probe_onednn_linear():  # noqa: ANN202
    """oneDNN's linear if this PyTorch build has it and it computes a @ b.T correctly; else False."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        if not torch.backends.mkldnn.is_available():
            return False
        a, b = torch.arange(12.0).view(3, 4), torch.arange(8.0).view(2, 4)
        return op if torch.equal(op(a, b, None, "none", [], ""), a @ b.t()) else False
    except (AttributeError, RuntimeError):
        return False


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class UnfoldConv2dFunction(torch.autograd.Function):
    """conv2d(x, weight, bias, stride, padding) with dilation 1 and groups 1, by unfold + matmul.

    Two memory layouts, the same algebra: NCHW inputs use the textbook [N, C*K*K, L] columns,
    F.unfold's order, and F.fold; channels-last inputs (what `cnnlab train` uses) unfold into
    [N*L, K*K*C] rows with C contiguous, so each product is ONE large matrix product and the output
    stays channels-last, and fold is K*K strided additions.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,  # noqa: ANN001
                stride: int | IntPair = 1, padding: int | IntPair = 0) -> torch.Tensor:
        stride, padding = _pair(stride), _pair(padding)
        if x.dim() != 4 or x.shape[1] != weight.shape[1]:
            raise ValueError(f"UnfoldConv2d: input of shape {tuple(x.shape)} does not have the "
                             f"{weight.shape[1]} channels the weight expects")
        nhwc = _is_channels_last(x)
        y = (_forward_nhwc if nhwc else _forward_nchw)(x, weight, bias, stride, padding)
        # keep only the input (which the layer before keeps anyway), not the columns and not the
        # padded copy: backward pads and unfolds it again, chunk by chunk
        ctx.save_for_backward(x if weight.requires_grad else None, weight)
        ctx.conf = (stride, padding, bias is not None, tuple(x.shape), nhwc)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):  # noqa: ANN001, ANN205
        x, weight = ctx.saved_tensors
        stride, padding, has_bias, shape, nhwc = ctx.conf
        need = ctx.needs_input_grad[:3]
        dx, dw, db = (_backward_nhwc if nhwc else _backward_nchw)(dy, x, weight, stride, padding, shape,
                                                                 need[0], need[1], has_bias and need[2])
        return dx, dw, db, None, None


def _forward_nchw(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: IntPair,
                  padding: IntPair) -> torch.Tensor:
    n, c, h, w = x.shape
    cout, _, kh, kw = weight.shape
    patches = _patches(_pad(x, padding), (kh, kw), stride)                       # a view, no copy
    ho, wo = patches.shape[2:4]
    k, length = c * kh * kw, ho * wo
    wmat = weight.reshape(cout, k)
    y = x.new_empty(n, cout, length)
    parts = _chunks(n, k * length * x.element_size(), NCHW_CHUNK_BYTES)
    buf = _workspace((parts[0].stop if parts else 0, k, length), x)             # reused: every chunk, every layer
    for part in parts:
        cols = _columns(patches[part], buf)                                      # [n, C*K*K, L]
        torch.bmm(wmat.expand(len(cols), cout, k), cols, out=y[part])           # Y_n = W @ cols_n
    if bias is not None:
        y += bias.view(1, -1, 1)
    return y.view(n, cout, ho, wo)


def _backward_nchw(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: IntPair, padding: IntPair,
                   shape: tuple, need_dx: bool, need_dw: bool, need_db: bool) -> tuple:
    n, c, h, w = shape
    cout, _, kh, kw = weight.shape
    dy = dy.reshape(n, cout, dy.shape[2] * dy.shape[3])                          # [N, C_out, L]
    k, length = c * kh * kw, dy.shape[2]
    parts = _chunks(n, k * length * dy.element_size(), NCHW_CHUNK_BYTES)
    dx = dy.new_zeros(n, c, h, w) if need_dx and len(parts) != 1 else None
    dw = weight.new_zeros(cout, k) if need_dw else None
    db = dy.sum(dim=(0, 2)) if need_db else None
    wmat_t = weight.reshape(cout, k).t()
    buf = _workspace((parts[0].stop if parts else 0, k, length), dy)
    patches = _patches(_pad(x, padding), (kh, kw), stride) if need_dw else None
    for part in parts:
        dy_part = dy[part]
        if need_dw:
            cols = _columns(patches[part], buf)                                  # recomputed, not stored
            dw += torch.bmm(dy_part, cols.transpose(1, 2)).sum(0)               # sum_n dY_n @ cols_n^T
        if need_dx:
            dcols = torch.bmm(wmat_t.expand(len(dy_part), k, cout), dy_part, out=buf[:len(dy_part)])
            folded = F.fold(dcols, (h, w), (kh, kw), padding=padding, stride=stride)  # W^T dY, folded
            if len(parts) == 1:
                dx = folded
            else:
                dx[part] = folded
    return dx, (dw.view_as(weight) if need_dw else None), db


def _padded_workspace(n: int, h: int, w: int, c: int, padding: IntPair, like: torch.Tensor,
                      slot: int = 0) -> torch.Tensor:
    """A reused [n, H+2P, W+2P, C] buffer whose border is zero (only its interior is ever written).

    `slot` tells apart two buffers of the same shape that are used at the same time.
    """
    cache = _local.__dict__.setdefault("padded", {})
    shape = (h + 2 * padding[0], w + 2 * padding[1], c)
    key = (shape, slot, like.dtype, like.device, torch.is_inference_mode_enabled())
    buf = cache.get(key)
    if buf is None or len(buf) < n:
        if buf is None and len(cache) >= 32:  # a model with many distinct shapes: start over, don't grow forever
            cache.clear()
        buf = cache[key] = like.new_zeros((n, *shape))
    return buf[:n]


def _padded(xh: torch.Tensor, padding: IntPair, slot: int = 0) -> torch.Tensor:
    """NHWC images [n, H, W, C] copied into the interior of a reused zero-bordered padded buffer."""
    if not (padding[0] or padding[1]):
        return xh
    n, h, w, c = xh.shape
    xp = _padded_workspace(n, h, w, c, padding, xh, slot)
    xp[:, padding[0]:padding[0] + h, padding[1]:padding[1] + w].copy_(xh)
    return xp


def _windows(xp: torch.Tensor, kernel: IntPair, stride: IntPair) -> tuple[torch.Tensor, torch.Tensor]:
    """Every kernel window of padded NHWC images: (a view [n, Ho, Wo, kh, kw, C], the same with kw*C merged).

    Within one kernel row the kw*C values of a window are contiguous in NHWC memory, so copying the
    merged view moves runs of kw*C floats instead of runs of C. The merged view is None when `xp`
    is not contiguous.
    """
    n, _, _, c = xp.shape
    ho = output_size(xp.shape[1], kernel[0], stride[0], 0)
    wo = output_size(xp.shape[2], kernel[1], stride[1], 0)
    win = xp.unfold(1, kernel[0], stride[0]).unfold(2, kernel[1], stride[1]).permute(0, 1, 2, 4, 5, 3)
    merged = None
    if xp.is_contiguous():
        s_n, s_h, s_w, _ = xp.stride()
        merged = xp.as_strided((n, ho, wo, kernel[0], kernel[1] * c), (s_n, s_h * stride[0], s_w * stride[1], s_h, 1))
    return win, merged


def _unfold_rows(xh: torch.Tensor, kernel: IntPair, stride: IntPair, padding: IntPair,
                 rows: torch.Tensor, slot: int = 0) -> torch.Tensor:
    """unfold of NHWC images [n, H, W, C] into `rows` [n*Ho*Wo, kh*kw*C] (C contiguous): one copy.

    The images are first copied into a zero-bordered padded buffer (the padding), then every
    kernel window of it is copied out as one row. Both buffers are reused and stay cache-sized.
    """
    win, merged = _windows(_padded(xh, padding, slot), kernel, stride)
    if merged is not None:
        rows.view(merged.shape).copy_(merged)
    else:
        rows.view(win.shape).copy_(win)
    return rows


class _ChunkUnfolder:
    """`_unfold_rows` for a stream of equal chunks of `nb` images, with every view made once.

    A CIFAR batch is unfolded in ~20 cache-sized chunks per layer; building the padded, window and
    row views anew for each chunk cost about as much as the copies themselves. A shorter last chunk
    takes the general path.
    """

    def __init__(self, nb: int, h: int, w: int, c: int, kernel: IntPair, stride: IntPair, padding: IntPair,
                 rows: torch.Tensor, like: torch.Tensor, slot: int = 0) -> None:
        self.nb, self.kernel, self.stride, self.padding, self.slot = nb, kernel, stride, padding, slot
        ho = output_size(h, kernel[0], stride[0], padding[0])
        wo = output_size(w, kernel[1], stride[1], padding[1])
        self.per_image = ho * wo
        self.rows = rows[:nb * ho * wo * kernel[0] * kernel[1] * c].view(nb * ho * wo, -1)
        self.padded = bool(padding[0] or padding[1])
        if self.padded:
            xp = _padded_workspace(nb, h, w, c, padding, like, slot)
            self.interior = xp[:, padding[0]:padding[0] + h, padding[1]:padding[1] + w]
            self.win = _windows(xp, kernel, stride)[1]                          # the workspace is contiguous
            self.dst = self.rows.view(self.win.shape)

    def __call__(self, xh: torch.Tensor) -> torch.Tensor:
        """The rows [n*Ho*Wo, kh*kw*C] of the NHWC chunk `xh` (a reused buffer)."""
        if self.padded and len(xh) == self.nb:
            self.interior.copy_(xh)
            self.dst.copy_(self.win)
            return self.rows
        return _unfold_rows(xh, self.kernel, self.stride, self.padding, self.rows[:len(xh) * self.per_image],
                            self.slot)


def _forward_nhwc(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: IntPair,
                  padding: IntPair) -> torch.Tensor:
    n, c, h, w = x.shape
    cout, _, kh, kw = weight.shape
    ho, wo = output_size(h, kh, stride[0], padding[0]), output_size(w, kw, stride[1], padding[1])
    k, length = kh * kw * c, ho * wo
    xh = x.permute(0, 2, 3, 1)                                                   # [N, H, W, C], a view
    wmat = weight.permute(0, 2, 3, 1).reshape(cout, k)                           # [C_out, kh*kw*C]
    y = x.new_empty(n, length, cout)
    parts = _chunks(n, k * length * x.element_size(), CHUNK_BYTES)
    step = parts[0].stop if parts else 0
    unfold = _ChunkUnfolder(step, h, w, c, (kh, kw), stride, padding, _workspace((step * length * k,), x), x)
    for xc, yc in zip(xh.split(step), y.view(n * length, cout).split(step * length)) if step else ():
        yc.copy_(_mm_nt(unfold(xc), wmat, bias))                                 # Y = unfold(X) W^T + b
    return y.view(n, ho, wo, cout).permute(0, 3, 1, 2)                           # NCHW shape, channels-last memory


def _backward_nhwc(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: IntPair, padding: IntPair,
                   shape: tuple, need_dx: bool, need_dw: bool, need_db: bool) -> tuple:
    """dW = dY^T cols and dX chunk by chunk, so every unfolded matrix stays cache-sized.

    For stride 1 (and P <= K-1), fold(dY W) is the same as unfolding dY padded by K-1-P and
    multiplying by the kernel flipped in space (a transposed convolution is a convolution with the
    flipped kernel): one copy and one product instead of K*K scattered additions. Other strides fold.
    """
    n, c, h, w = shape
    cout, _, kh, kw = weight.shape
    ho, wo = dy.shape[2:]
    k, length = kh * kw * c, ho * wo
    dyh = dy.permute(0, 2, 3, 1).contiguous()                                    # [N, Ho, Wo, C_out] (a view if channels-last)
    dy2 = dyh.view(n * length, cout)
    db = dy2.sum(0) if need_db else None
    as_conv = stride == (1, 1) and padding[0] <= kh - 1 and padding[1] <= kw - 1
    per_image = max(k * length, kh * kw * cout * h * w if as_conv else 0)         # the larger unfolded matrix
    parts = _chunks(n, per_image * dy.element_size(), CHUNK_BYTES)
    step = parts[0].stop if parts else 0
    buf = _workspace((step * per_image,), dy)
    dw = weight.new_zeros(cout, k) if need_dw else None
    dx = dy.new_empty(n, h, w, c) if need_dx else None
    xh = x.permute(0, 2, 3, 1) if need_dw else None
    if need_dx and as_conv:
        wflip = weight.flip(2, 3).permute(1, 2, 3, 0).reshape(c, kh * kw * cout)  # [C, kh*kw*C_out]
        full = (kh - 1 - padding[0], kw - 1 - padding[1])
    elif need_dx:
        wmat = weight.permute(0, 2, 3, 1).reshape(cout, k)                       # [C_out, kh*kw*C]
    unfold_x = _ChunkUnfolder(step, h, w, c, (kh, kw), stride, padding, buf, dy) if need_dw else None
    unfold_dy = _ChunkUnfolder(step, ho, wo, cout, (kh, kw), (1, 1), full, buf, dy, slot=1) \
        if need_dx and as_conv else None
    for part in parts:
        nb = part.stop - part.start
        if need_dw:
            rows = unfold_x(xh[part])                                            # recomputed, not stored
            dw += _mm_nt(dy2[part.start * length:part.stop * length].t(), rows.t())  # dW += dY^T cols
        if not need_dx:
            continue
        if as_conv:                                                              # dX = unfold(pad(dY)) @ flip(W)
            dx[part].view(nb * h * w, c).copy_(_mm_nt(unfold_dy(dyh[part]), wflip))
        else:                                                                    # dX = fold(dY W)
            dcols = _mm_nt(dy2[part.start * length:part.stop * length], wmat.t()).view(nb, ho, wo, kh, kw, c)
            hp, wp = h + 2 * padding[0], w + 2 * padding[1]
            target = dy.new_zeros(nb, hp, wp, c)                                 # chunk-sized
            for i in range(kh):                                                  # each kernel offset adds its
                for j in range(kw):                                              # gradients back where it read
                    target[:, i:i + stride[0] * (ho - 1) + 1:stride[0], j:j + stride[1] * (wo - 1) + 1:stride[1]] \
                        += dcols[:, :, :, i, j]
            dx[part] = target[:, padding[0]:padding[0] + h, padding[1]:padding[1] + w]
    dx = dx.permute(0, 3, 1, 2) if need_dx else None
    dw = dw.view(cout, kh, kw, c).permute(0, 3, 1, 2).contiguous() if need_dw else None
    return dx, dw, db


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
