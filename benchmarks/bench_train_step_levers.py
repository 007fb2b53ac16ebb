"""The levers on a ResNet-20 training step (batch 128, channels_last, real CIFAR-10), side by side.

About 40% of the step is BatchNorm, ReLU and the residual add: memory-bound passes over the
activations. This script measures, alternating in one process, medians of --reps rounds of --steps
steps each (ratios, not absolute times, are what survive a shared machine):

  eager          the step `cnnlab train` runs (channels_last, in-place ReLUs where the graph allows)
  fused          BN+ReLU(+add) as one autograd function in pure PyTorch (`FusedBNReLU` below): batch norm,
                 the residual added and the ReLU applied in place on its output, one saved output for the
                 ReLU mask; its backward masks the gradient and calls native_batch_norm_backward
  compiled       torch.compile of just those BN+ReLU(+add) pieces (the convolutions stay eager oneDNN)
  threads=1      the eager step on one thread (images/s per core)
  batch 64/256   the eager step at other batch sizes (images/s)
  convs only     the step with BatchNorm and ReLU taken out (the residual add kept): the rate a perfect
                 BN+ReLU fusion could at best reach, i.e. what ResNet-20's own small convolutions allow

It also checks that the fused step's gradients equal the eager step's, counts the FLOPs of one training
step (torch.utils.flop_counter) and times a large channels_last convolution (3x3, 256 channels, 32x32,
batch 64) in the same process: the step's FLOP rate over that rate is the issue's 65% target.
oneDNN graph fusion (`torch.jit.enable_onednn_fusion`) works on frozen TorchScript inference graphs only
(no autograd), so it cannot run a training step; it is not measured here.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_train_step_levers.py --steps 8 --reps 5
    # smoke check: --steps 2 --reps 1 --no-compile
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CNNLAB_SHARED", ROOT.parent / "shared")) / "data"


class FusedBNReLU(torch.autograd.Function):
    """relu(batch_norm(x) + residual) in training mode, BN statistics updated, as one autograd node."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, running_mean: torch.Tensor,
                running_var: torch.Tensor, momentum: float, eps: float, residual: torch.Tensor | None
                ) -> torch.Tensor:
        out, mean, invstd = torch.ops.aten._native_batch_norm_legit(x, weight, bias, running_mean, running_var,
                                                                    True, momentum, eps)
        if residual is not None:
            out.add_(residual)
        out.relu_()
        ctx.eps, ctx.has_residual = eps, residual is not None
        ctx.save_for_backward(x, weight, out, mean, invstd)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        x, weight, out, mean, invstd = ctx.saved_tensors
        g = torch.ops.aten.threshold_backward(grad, out, 0)
        dx, dw, db = torch.ops.aten.native_batch_norm_backward(
            g, x, weight, None, None, mean, invstd, True, ctx.eps,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]])
        return dx, dw, db, None, None, None, None, (g if ctx.has_residual else None)


def _bn_relu_eager(x: torch.Tensor, bn: nn.BatchNorm2d, residual: torch.Tensor | None) -> torch.Tensor:
    out = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, True, bn.momentum, bn.eps)
    return F.relu(out + residual if residual is not None else out)


_compiled = None


def _bn_relu_compiled(x: torch.Tensor, bn: nn.BatchNorm2d, residual: torch.Tensor | None) -> torch.Tensor:
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(_bn_relu_eager, dynamic=False)
    return _compiled(x, bn, residual)


def _bn_relu_fused(x: torch.Tensor, bn: nn.BatchNorm2d, residual: torch.Tensor | None) -> torch.Tensor:
    return FusedBNReLU.apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.momentum, bn.eps, residual)


def _no_bn_relu(x: torch.Tensor, bn: nn.BatchNorm2d, residual: torch.Tensor | None) -> torch.Tensor:
    return x if residual is None else x + residual


def with_bn_relu(model: Any, impl: Any) -> Any:
    """A copy of a cnnlab ResNet-20 whose BN->ReLU and BN->+shortcut->ReLU run through `impl`."""
    from cnnlab.models.cifar_resnet import BasicBlock, CifarResNet
    m = copy.deepcopy(model)

    def block_forward(self: BasicBlock, x: torch.Tensor) -> torch.Tensor:
        out = impl(self.conv1(x), self.bn1, None)
        return impl(self.conv2(out), self.bn2, self.shortcut(x) if self.use_shortcut else None)

    def net_forward(self: CifarResNet, x: torch.Tensor) -> torch.Tensor:
        x = impl(self.conv1(x), self.bn1, None)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    for mod in m.net.modules():
        if isinstance(mod, BasicBlock):
            mod.forward = block_forward.__get__(mod)
    m.net.forward = net_forward.__get__(m.net)
    return m


def conv_rate(reps: int = 5) -> float:
    """GFLOP/s of a large channels_last fp32 convolution: 3x3, 256 -> 256 channels, 32x32, batch 64."""
    conv = nn.Conv2d(256, 256, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(64, 256, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        conv(x)
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            conv(x)
            ts.append(time.perf_counter() - t)
    return 2 * 64 * 256 * 256 * 9 * 32 * 32 / statistics.median(ts) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import cnnlab
    from cnnlab.data import load_dataset
    from cnnlab.data.loader import TensorLoader
    from cnnlab.train.inplace import inplace_activations
    data = load_dataset(str(SHARED / "cifar10_test.npz"))
    torch.manual_seed(0)
    base = cnnlab.create_model("cifar_resnet20").train().to(memory_format=torch.channels_last)
    batches = {bs: [b for _, b in zip(range(a.steps + 1), TensorLoader(data, bs, augment="crop4,flip", seed=0,
                                                                       channels_last=True))]
               for bs in (64, 128, 256)}

    variants: dict[str, tuple[Any, int, int]] = {  # name -> (model, batch, threads)
        "eager": (copy.deepcopy(base), 128, a.threads),
        "fused": (with_bn_relu(base, _bn_relu_fused), 128, a.threads),
        "eager threads=1": (copy.deepcopy(base), 128, 1),
        "eager batch 64": (copy.deepcopy(base), 64, a.threads),
        "eager batch 256": (copy.deepcopy(base), 256, a.threads),
        "convs only (no BN, no ReLU)": (with_bn_relu(base, _no_bn_relu), 128, a.threads),
    }
    if not a.no_compile:
        variants["compiled BN+ReLU(+add)"] = (with_bn_relu(base, _bn_relu_compiled), 128, a.threads)

    # gradients: the fused step against the eager step, same weights, same batch
    xb, yb = batches[128][0]
    grads = {}
    for name in ("eager", "fused"):
        m = copy.deepcopy(variants[name][0])
        F.cross_entropy(m(xb), yb).backward()
        grads[name] = {n: p.grad for n, p in m.named_parameters()}
    diff = max(float((grads["fused"][n] - g).abs().max() / g.abs().max().clamp_min(1e-12))
               for n, g in grads["eager"].items())
    print(f"fused vs eager: largest relative gradient difference {diff:.2e}", flush=True)

    def step(model: Any, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    opts = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, (m, _, _) in variants.items()}
    for k, (m, bs, th) in variants.items():  # warm-up (and compilation)
        torch.set_num_threads(th)
        t = time.perf_counter()
        with inplace_activations(m.net):
            step(m, opts[k], *batches[bs][0])
        print(f"warm-up {k}: {time.perf_counter() - t:.1f} s", flush=True)
    per_image: dict[str, list[float]] = {k: [] for k in variants}
    rates = []
    for _ in range(a.reps):
        torch.set_num_threads(a.threads)
        rates.append(conv_rate())
        for k in (list(variants) if len(rates) % 2 else list(variants)[::-1]):  # the order alternates
            m, bs, th = variants[k]
            torch.set_num_threads(th)
            with inplace_activations(m.net):
                t = time.perf_counter()
                for x, y in batches[bs][1:]:
                    step(m, opts[k], x, y)
            per_image[k].append((time.perf_counter() - t) / (a.steps * bs))
    torch.set_num_threads(a.threads)
    from torch.utils.flop_counter import FlopCounterMode
    m = copy.deepcopy(base)
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(m(xb), yb).backward()
    flop_per_image = fc.get_total_flops() / len(xb)
    conv = statistics.median(rates)
    eager = statistics.median(per_image["eager"])
    print(f"training FLOP per image {flop_per_image / 1e6:.0f} M; large channels_last conv {conv:.0f} GFLOP/s "
          f"(median of {a.reps}); load average {os.getloadavg()}")
    print("| step | images/s | vs eager (medians) | vs eager (median of paired rounds) | GFLOP/s | of the conv rate |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, ts in per_image.items():
        med = statistics.median(ts)
        paired = statistics.median(e / t for e, t in zip(per_image["eager"], ts))
        gf = flop_per_image / med / 1e9
        print(f"| {k} | {1 / med:.0f} | {eager / med:.2f}x | {paired:.2f}x | {gf:.0f} | {100 * gf / conv:.0f}% |")


if __name__ == "__main__":
    main()
