"""Claim: UnfoldConv2d trains a CIFAR ResNet-20 within 2x the time and 3x the memory of nn.Conv2d.

One training step (forward + backward, batch 128, 2 threads) of cnnlab.create_model('cifar_resnet20'),
as is and after convert_to_unfold: time as the median of interleaved steps in this one process;
peak memory in a fresh process per variant (peak RSS of one step above the resident model and batch,
Linux clear_refs), plus the bytes autograd saves for backward (exact, the same for both variants)
and the size of the largest unfolded matrix (K*K*C times the layer's input).

    .venv/bin/python benchmarks/bench_reference_unfold_step.py [--repeats 7] [--batch 128] [--channels-last]
"""
from __future__ import annotations

import argparse
import copy
import json
import os

import torch

import cnnlab
from cnnlab.reference import convert_to_unfold
from cnnlab.reference.checks import largest_columns_bytes, step_times
from cnnlab.reference.memprobe import run_probe


def saved_bytes(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd keeps for backward after one forward."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        torch.nn.functional.cross_entropy(model(x), y)
    return sum(seen.values())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--channels-last", action="store_true", help="Model and batch in channels-last memory "
                   "(what `cnnlab train` uses; UnfoldConv2d then takes its NHWC path).")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} (shared: compare ratios)")
    native = cnnlab.create_model("cifar_resnet20").train()
    ours = copy.deepcopy(native)
    n = convert_to_unfold(ours.net)
    x, y = torch.rand(a.batch, 3, 32, 32), torch.randint(0, 10, (a.batch,))
    if a.channels_last:
        native, ours = native.to(memory_format=torch.channels_last), ours.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    t = step_times({"native": native, "unfold": ours}, x, y, a.repeats)
    print(f"converted {n} convolutions; {'channels-last' if a.channels_last else 'NCHW'} memory layout; "
          f"training step, batch {a.batch}, {a.threads} threads, "
          f"median of {a.repeats} interleaved steps:")
    print(f"  nn.Conv2d     {t['native'] * 1e3:8.1f} ms  ({a.batch / t['native']:.0f} images/s)")
    print(f"  UnfoldConv2d  {t['unfold'] * 1e3:8.1f} ms  ({a.batch / t['unfold']:.0f} images/s)   "
          f"time ratio {t['unfold'] / t['native']:.2f}x")

    cl = a.channels_last
    probes = {"native": run_probe("native", "cifar_resnet20", a.batch, threads=a.threads, channels_last=cl),
              "unfold": run_probe("unfold", "cifar_resnet20", a.batch, threads=a.threads, channels_last=cl),
              "unfold, whole-batch columns": run_probe("unfold", "cifar_resnet20", a.batch, threads=a.threads,
                                                       chunk_bytes=0, channels_last=cl)}
    base = probes["native"]["step_peak"]
    print("peak memory of one step (fresh process each, peak RSS above model+batch):")
    for k, v in probes.items():
        print(f"  {k:<28} {v['step_peak'] / 2**20:8.1f} MiB   ratio {v['step_peak'] / base:.2f}x")
    sb_native, sb_ours = saved_bytes(native, x, y), saved_bytes(ours, x, y)
    cols = largest_columns_bytes(native, x)
    print(f"saved for backward: nn.Conv2d {sb_native / 2**20:.1f} MiB, UnfoldConv2d {sb_ours / 2**20:.1f} MiB; "
          f"largest unfolded matrix {cols / 2**20:.1f} MiB (9*16 x the 128x16x32x32 input)")
    print(json.dumps({"step_s": t, "time_ratio": t["unfold"] / t["native"],
                      "step_peak_bytes": {k: v["step_peak"] for k, v in probes.items()},
                      "memory_ratio": probes["unfold"]["step_peak"] / base,
                      "saved_bytes": {"native": sb_native, "unfold": sb_ours}, "largest_columns_bytes": cols}))


if __name__ == "__main__":
    main()
