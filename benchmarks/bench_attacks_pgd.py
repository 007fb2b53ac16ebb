"""PGD-10 L-inf 8/255 on the pretrained CIFAR-10 ResNet-20: cnnlab vs torchattacks on the same batch.

Side by side in one process, alternating, median of --repeats runs. Reports images/s, the ratio,
forward+backward passes per image and the time per pass against torchattacks', success rates
(fraction of the batch misclassified after the attack). cnnlab runs as shipped (an image stops at its
first success, already-wrong images cost nothing) and with early stopping off (the same 10 steps for
every image, as torchattacks runs), and, with early stopping off, without each of its two speed levers:
the folded-BN channels_last twin (`frozen(fast=True)`) and the cache-sized chunks of images per pass.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_attacks_pgd.py [--n 256] [--repeats 5] [--eps 8/255]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import cnnlab
from cnnlab.attacks.gradient import run_attack
from cnnlab.cli.common import parse_fraction

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--eps", default="8/255")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(2)
    import torchattacks
    eps = parse_fraction(args.eps, "--eps")
    alpha = 2 / 255 if args.eps == "8/255" else 2.5 * eps / args.steps
    model = cnnlab.create_model("cifar_resnet20", weights=SHARED / "weights/akamaster_cifar10_resnet20-12fca82f.th").eval()
    d = np.load(SHARED / "cifar10_test.npz")
    idx = np.random.default_rng(0).permutation(len(d["y"]))[:args.n]
    x = torch.from_numpy(d["x"][idx]).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(d["y"][idx].astype(np.int64))
    clean = float((model.probabilities(x).argmax(1) == y).float().mean())

    def run_ta():
        torch.manual_seed(0)
        adv = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=args.steps, random_start=True)(x, y)
        return adv, args.n * args.steps

    def run_ours(early: bool, twin: bool = True, **engine_kw):
        model.fast_inference = twin
        try:
            r = run_attack("pgd", model, x, y=y, loss="ce", rule="sign", norm="linf", eps=eps, steps=args.steps,
                           step_size=alpha, rand_init=True, early_stop=early, **engine_kw)
        finally:
            model.fast_inference = True
        return r.images, r.passes

    runs = {"torchattacks": run_ta, "cnnlab": lambda: run_ours(True),
            "cnnlab (no early stop)": lambda: run_ours(False),
            "cnnlab (no early stop, no twin)": lambda: run_ours(False, twin=False),
            "cnnlab (no early stop, one pass of 256)": lambda: run_ours(False, chunk=args.n)}
    times = {k: [] for k in runs}
    stats = {}
    run_ta()  # warm-up
    for _ in range(args.repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            adv, passes = fn()
            times[name].append(time.perf_counter() - t)
            succ = float((model.probabilities(adv).argmax(1) != y).float().mean())
            linf = float((adv - x).abs().flatten(1).amax(1).max())
            stats[name] = (succ, passes / args.n, linf)
    base = statistics.median(times["torchattacks"])
    print(f"PGD-{args.steps} L-inf {args.eps} (step {alpha * 255:.3g}/255, random start) on {args.n} CIFAR-10 test "
          f"images, ResNet-20 (clean accuracy {clean:.1%}); torch {torch.__version__}, 2 threads, "
          f"median of {args.repeats}. The machine is shared with other jobs: compare ratios, not absolute times.")
    print("| implementation | images/s | vs torchattacks | passes/image | per pass vs torchattacks | success rate "
          "| max L-inf |")
    print("|---|---|---|---|---|---|---|")
    for name in runs:
        med = statistics.median(times[name])
        succ, ppi, linf = stats[name]
        per_pass = (base / args.steps) / (med / ppi)  # torchattacks' seconds per pass over ours
        print(f"| {name} | {args.n / med:.1f} | {base / med:.2f}x | {ppi:.2f} | {per_pass:.2f}x | {succ:.1%} "
              f"| {linf * 255:.3f}/255 |")
    import os
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
