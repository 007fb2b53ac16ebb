"""Muon's step on a CPU: cnnlab's FilterMuon (Newton-Schulz in float32) against torch.optim.Muon (bfloat16).

torch.optim.Muon orthogonalizes every update in bfloat16, which CPUs without bfloat16 matrix units
emulate slowly; cnnlab's FilterMuon runs the same iteration in float32 there. This script times one
optimizer step of each over the airbench network's filter banks (widths 64-256-256, the whitening
conv frozen as in training), alternating, medians of --reps, and prints the ratio.

    .venv/bin/python benchmarks/bench_train_muon.py --reps 7
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import cnnlab
    from cnnlab.train.optim import MUON_NS_STEPS, FilterMuon, _matrix, is_filter
    net = cnnlab.create_model("airbench").net.to(memory_format=torch.channels_last)
    net.whiten.weight.requires_grad_(False)  # as in training: the whitening filters are set, not learnt
    filters = [p for n, p in net.named_parameters() if is_filter(n, p)]
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=g).contiguous(memory_format=torch.channels_last) for p in filters]
    ours = FilterMuon([{"params": filters, "lr": 0.24}], momentum=0.6)
    mats = [torch.nn.Parameter(_matrix(p.detach(), p).clone()) for p in filters]
    theirs = torch.optim.Muon(mats, lr=0.24, weight_decay=0.0, momentum=0.6, nesterov=True, ns_steps=MUON_NS_STEPS)

    def step_ours() -> None:
        for p, gr in zip(filters, grads):
            p.grad = gr
        ours.step()

    def step_theirs() -> None:
        for m, p, gr in zip(mats, filters, grads):
            m.grad = _matrix(gr, p)
        theirs.step()

    runs = {"FilterMuon (float32)": step_ours, "torch.optim.Muon (bfloat16)": step_theirs}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():  # warm-up
        fn()
    for r in range(a.reps):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            t = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t)
    shapes = ", ".join("x".join(map(str, p.shape)) for p in filters)
    print(f"filter banks: {shapes}; {MUON_NS_STEPS} Newton-Schulz steps; {a.threads} threads")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:30s} median {1000 * v:8.1f} ms per optimizer step")
    print(f"FilterMuon is {med['torch.optim.Muon (bfloat16)'] / med['FilterMuon (float32)']:.1f}x faster per step")


if __name__ == "__main__":
    main()
