"""The comparisons behind `cnnlab scratch-check`: our convolution and numpy forward vs PyTorch.

Errors are measured, not assumed: UnfoldConv2d's output and its three gradients against F.conv2d's
on a grid of awkward shapes (float64, plus torch.autograd.gradcheck against finite differences),
a whole model converted with `convert_to_unfold` against the original, and `numpy_forward` against
the model's own forward. Then speed and memory ratios of a training step.
"""
from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .numpy_forward import compile_numpy, numpy_forward
from .unfold_conv import UnfoldConv2dFunction, convert_to_unfold

#: (N, C_in, H, W, C_out, kernel, stride, padding, bias): odd sizes, stride > kernel, padding > 0,
#: 1x1, one channel and many, even and non-square kernels.
SHAPE_GRID: list[tuple] = [
    (2, 1, 7, 7, 1, 3, 1, 1, True),
    (2, 3, 9, 7, 4, 3, 2, 1, True),
    (2, 2, 8, 8, 3, 1, 1, 0, True),
    (2, 3, 10, 9, 2, 2, 3, 0, True),
    (1, 4, 6, 6, 5, 5, 1, 3, True),
    (2, 16, 5, 5, 24, 3, 1, 1, False),
    (2, 3, 11, 11, 4, 4, 2, 2, True),
    (2, 3, 6, 9, 2, (1, 3), (2, 1), (0, 1), True),
    (1, 2, 3, 3, 3, 3, 1, 0, True),
    (2, 2, 5, 6, 3, 3, 1, 3, True),   # stride 1 but P > K-1: dX by fold, not as a convolution
]


@dataclass
class ErrorRow:
    """One comparison: the largest absolute difference, the reference's scale, and the verdict."""

    name: str
    max_abs_error: float
    scale: float
    tolerance: float
    ok: bool
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ScratchReport:
    """Errors (table rows), speed and memory of our from-scratch layers against PyTorch's."""

    model: str
    batch_size: int
    rows: list[ErrorRow] = field(default_factory=list)
    speed: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.rows)

    def to_dict(self) -> dict:
        return {"model": self.model, "batch_size": self.batch_size, "passed": self.passed,
                "rows": [r.to_dict() for r in self.rows], "speed": self.speed, "memory": self.memory}

    def table(self) -> str:
        """A plain-text table for the terminal."""
        lines = [f"{'check':<44} {'max |error|':>12} {'scale':>10} {'tolerance':>10}  ok"]
        for r in self.rows:
            lines.append(f"{r.name:<44} {r.max_abs_error:>12.3g} {r.scale:>10.3g} {r.tolerance:>10.1g}  "
                         f"{'yes' if r.ok else 'NO'}{'  ' + r.note if r.note else ''}")
        s = self.speed
        if s:
            lines.append("")
            lines.append(f"speed ({self.model}, batch {self.batch_size}, median of {s['repeats']}; "
                         f"a shared machine: compare the ratios)")
            lines.append(f"  training step  nn.Conv2d {s['native_step_s'] * 1e3:8.1f} ms   UnfoldConv2d "
                         f"{s['unfold_step_s'] * 1e3:8.1f} ms   ratio {s['step_ratio']:.2f}x")
            if "numpy_ratio" in s:
                lines.append(f"  inference      PyTorch   {s['torch_forward_s'] * 1e3:8.1f} ms   numpy        "
                             f"{s['numpy_forward_s'] * 1e3:8.1f} ms   ratio {s['numpy_ratio']:.2f}x")
        m = self.memory
        if m:
            lines.append("memory (one training step, peak RSS above the resident model and data, fresh process each)")
            lines.append(f"  nn.Conv2d {m['native_step_peak'] / 2**20:8.1f} MiB   UnfoldConv2d "
                         f"{m['unfold_step_peak'] / 2**20:8.1f} MiB   ratio {m['ratio']:.2f}x   "
                         f"(largest unfolded matrix {m['largest_columns_bytes'] / 2**20:.1f} MiB)")
        lines.append("")
        lines.append("all checks passed" if self.passed else "SOME CHECKS FAILED")
        return "\n".join(lines)


def _row(name: str, got: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray, tol: float,
         note: str = "") -> ErrorRow:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    err = float(np.abs(got - ref).max()) if got.size else 0.0
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    return ErrorRow(name, err, scale, tol, bool(err <= tol * max(1.0, scale)), note)


def _max_rows(name: str, pairs: list[tuple], tol: float, note: str = "") -> ErrorRow:
    """The worst of several (got, ref) comparisons, each judged against its own scale."""
    rows = [_row(name, g, r, tol, note) for g, r in pairs]
    worst = max(rows, key=lambda r: r.max_abs_error / max(1.0, r.scale))
    worst.ok = all(r.ok for r in rows)
    return worst


def conv_grid_errors(grid: Sequence[tuple] = SHAPE_GRID, seed: int = 0, gradcheck: bool = True) -> list[ErrorRow]:
    """UnfoldConv2dFunction vs F.conv2d in float64 over `grid`: output, dX, dW, db, and gradcheck."""
    gen = torch.Generator().manual_seed(seed)
    fwd, dxs, dws, dbs, failed = [], [], [], [], []
    for n, cin, h, w, cout, k, s, p, bias in grid:
        kh, kw = (k, k) if isinstance(k, int) else k
        x = torch.randn(n, cin, h, w, dtype=torch.float64, generator=gen)
        weight = torch.randn(cout, cin, kh, kw, dtype=torch.float64, generator=gen)
        b = torch.randn(cout, dtype=torch.float64, generator=gen) if bias else None
        leaves = [t.requires_grad_() for t in (x, weight, b) if t is not None]
        ref = F.conv2d(x, weight, b, s, p)
        ours = UnfoldConv2dFunction.apply(x, weight, b, s, p)
        dy = torch.randn(ref.shape, dtype=torch.float64, generator=gen)
        ref_grads = torch.autograd.grad(ref, leaves, dy)
        our_grads = torch.autograd.grad(ours, leaves, dy)
        fwd.append((ours.detach(), ref.detach()))
        dxs.append((our_grads[0], ref_grads[0]))
        dws.append((our_grads[1], ref_grads[1]))
        if bias:
            dbs.append((our_grads[2], ref_grads[2]))
        if gradcheck and not torch.autograd.gradcheck(
                lambda *t, s=s, p=p, bias=bias: UnfoldConv2dFunction.apply(t[0], t[1], t[2] if bias else None, s, p),
                tuple(leaves), eps=1e-6, atol=1e-5, rtol=1e-4, raise_exception=False):
            failed.append(f"{(n, cin, h, w)} k={k} s={s} p={p}")
    note = f"{len(grid)} shapes, float64"
    rows = [_max_rows("conv forward (unfold vs F.conv2d)", fwd, 1e-10, note),
            _max_rows("conv dX (fold of W^T dY)", dxs, 1e-10, note),
            _max_rows("conv dW (dY cols^T)", dws, 1e-10, note),
            _max_rows("conv db (sum of dY)", dbs, 1e-10, note)]
    if gradcheck:
        rows.append(ErrorRow("gradcheck vs finite differences", float(len(failed)), float(len(grid)), 0.0,
                             not failed, f"{len(grid) - len(failed)}/{len(grid)} shapes pass"
                             + (f"; failed: {', '.join(failed)}" if failed else "")))
    return rows


def _forward_backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> dict:
    """Logits and the gradients wrt the images, conv weights, conv biases, other parameters."""
    model = copy.deepcopy(model).to(dtype).train()
    xi = x.to(dtype).clone().requires_grad_()
    logits = model(xi)
    F.cross_entropy(logits, y).backward()
    convs = {name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    out: dict[str, list] = {"logits": [logits.detach()], "dX": [xi.grad], "dW": [], "db": [], "other": []}
    for name, p in model.named_parameters():
        owner, kind = name.rsplit(".", 1) if "." in name else ("", name)
        key = ("dW" if kind == "weight" else "db") if owner in convs else "other"
        out[key].append(p.grad)
    return out


def model_errors(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[ErrorRow]:
    """A model after `convert_to_unfold` vs the original: logits and every gradient.

    float64: the two must agree to rounding. float32: both are compared with the float64 truth, and
    ours must be about as accurate as PyTorch's own float32 convolution (which is not exact either).
    """
    ours = copy.deepcopy(model)
    converted = convert_to_unfold(ours.net if hasattr(ours, "net") else ours)
    truth = _forward_backward(model, x, y, torch.float64)
    ours64 = _forward_backward(ours, x, y, torch.float64)
    native32 = _forward_backward(model, x, y, torch.float32)
    ours32 = _forward_backward(ours, x, y, torch.float32)
    labels = {"logits": "logits", "dX": "dX (wrt the images)", "dW": "dW (every conv weight)",
              "db": "db (every conv bias)", "other": "other parameter gradients"}
    rows = []
    for key, label in labels.items():
        if truth[key]:
            rows.append(_max_rows(f"model {label}, float64", list(zip(ours64[key], truth[key])), 1e-10,
                                  f"{converted} convs converted; UnfoldConv2d vs nn.Conv2d"))
    for key in ("logits", "dX", "dW", "db"):
        if not truth[key]:
            continue
        row = _max_rows(f"model {labels[key]}, float32", list(zip(ours32[key], truth[key])), 1e-4)
        ref = _max_rows("", list(zip(native32[key], truth[key])), 1e-4)
        row.tolerance = max(1e-4, 2 * ref.max_abs_error / max(1.0, ref.scale))
        row.ok = row.max_abs_error <= row.tolerance * max(1.0, row.scale)
        row.note = f"vs float64; nn.Conv2d float32 error {ref.max_abs_error:.2g}"
        rows.append(row)
    return rows


def numpy_errors(model: nn.Module, x: torch.Tensor) -> list[ErrorRow]:
    """numpy_forward vs the model's forward, in float32 and in float64 (eval mode, logits)."""
    model = model.eval()
    with torch.inference_mode():
        ref32 = model(x).numpy()
    rows = [_row("numpy forward vs torch (float32 logits)", numpy_forward(model, x), ref32, 1e-5,
                 "tolerance relative to the logits' scale")]
    m64 = copy.deepcopy(model).double()
    with torch.inference_mode():
        ref64 = m64(x.double()).numpy()
    rows.append(_row("numpy forward vs torch (float64 logits)", numpy_forward(m64, x.double(), dtype=np.float64),
                     ref64, 1e-10))
    probs = numpy_forward(model, x, probabilities=True)
    rows.append(_row("numpy softmax vs torch (float32 probabilities)", probs,
                     torch.softmax(torch.from_numpy(ref32), 1).numpy(), 1e-6))
    return rows


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn()` in seconds (after warm-up calls)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def training_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """One forward+backward with cross-entropy (no optimizer step); returns the loss."""
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach().item()


def step_times(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, repeats: int = 5) -> dict[str, float]:
    """Median training-step time of each model, interleaved (side by side, so load hits all alike)."""
    times: dict[str, list[float]] = {k: [] for k in models}
    for m in models.values():
        training_step(m, x, y)  # warm-up
    for _ in range(repeats):
        for k, m in models.items():
            t = time.perf_counter()
            training_step(m, x, y)
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def largest_columns_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the largest unfolded matrix [N, C*K*K, L] any convolution of `model` needs for `x`."""
    sizes: list[int] = []

    def hook(m: nn.Conv2d, inp: tuple, out: torch.Tensor) -> None:
        sizes.append(out.shape[0] * out.shape[2] * out.shape[3] * m.in_channels * m.kernel_size[0]
                     * m.kernel_size[1] * out.element_size())
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    return max(sizes, default=0)


def scratch_check(model: str | nn.Module = "simple_cnn", batch_size: int = 32, seed: int = 0, repeats: int = 3,
                  speed: bool = True, memory: bool = True, gradcheck: bool = True,
                  weights: str | None = None) -> ScratchReport:
    """Run every comparison on a small model (seeded random images) -> ScratchReport.

    `model` is a registered name (random weights, or `weights`) or a Classifier. Memory is measured
    in fresh processes, one per variant, and only for a registered name.
    """
    import cnnlab
    from ..errors import CnnlabError
    torch.manual_seed(seed)
    name = model if isinstance(model, str) else getattr(model, "name", type(model).__name__)
    net = cnnlab.create_model(model, weights=weights, device="cpu") if isinstance(model, str) else model
    gen = torch.Generator().manual_seed(seed)
    h, w = getattr(net, "input_size", (32, 32))
    x = torch.rand(batch_size, 3, h, w, generator=gen)
    y = torch.randint(0, getattr(net, "num_classes", 10), (batch_size,), generator=gen)
    report = ScratchReport(name, batch_size)
    report.rows += conv_grid_errors(seed=seed, gradcheck=gradcheck)
    report.rows += model_errors(net, x, y)
    try:
        program = compile_numpy(net)
    except CnnlabError as e:
        program = None
        report.rows.append(ErrorRow("numpy forward vs torch", float("nan"), 0.0, 0.0, False, str(e)))
    if program is not None:
        report.rows += numpy_errors(net, x)
    if speed:
        native = copy.deepcopy(net).train()
        ours = copy.deepcopy(net).train()
        convert_to_unfold(ours.net if hasattr(ours, "net") else ours)
        t = step_times({"native": native, "unfold": ours}, x, y, repeats)
        report.speed = {"repeats": repeats, "native_step_s": t["native"], "unfold_step_s": t["unfold"],
                        "step_ratio": t["unfold"] / t["native"]}
        if program is not None:
            net.eval()
            xn = x.permute(0, 2, 3, 1).numpy()
            with torch.inference_mode():
                t_torch = median_time(lambda: net(x), repeats)
            t_numpy = median_time(lambda: program(xn), repeats)
            report.speed.update(torch_forward_s=t_torch, numpy_forward_s=t_numpy, numpy_ratio=t_numpy / t_torch)
    if memory and isinstance(model, str):
        from .memprobe import run_probe
        h0 = run_probe("native", model, batch_size, h, torch.get_num_threads())
        h1 = run_probe("unfold", model, batch_size, h, torch.get_num_threads())
        report.memory = {"native_step_peak": h0["step_peak"], "unfold_step_peak": h1["step_peak"],
                         "ratio": h1["step_peak"] / max(h0["step_peak"], 1),
                         "largest_columns_bytes": largest_columns_bytes(net, x)}
    return report
