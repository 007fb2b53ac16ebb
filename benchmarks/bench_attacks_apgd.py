"""PGD over-reports robustness: robust accuracy of the pretrained CIFAR-10 ResNet-20 under PGD and
APGD-CE at the same small eps and step budgets, side by side in one process (plus cost per image).

    .venv/bin/python benchmarks/bench_attacks_apgd.py [--n 256] [--eps 0.5/255] [--steps 10]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import cnnlab
from cnnlab import attacks
from cnnlab.cli.common import parse_fraction

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--eps", default="0.5/255")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(2)
    eps = parse_fraction(args.eps, "--eps")
    model = cnnlab.create_model("cifar_resnet20", weights=SHARED / "weights/akamaster_cifar10_resnet20-12fca82f.th")
    d = np.load(SHARED / "cifar10_test.npz")
    idx = np.random.default_rng(0).permutation(len(d["y"]))[:args.n]
    x = torch.from_numpy(d["x"][idx]).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(d["y"][idx].astype(np.int64))
    clean = float((model.probabilities(x).argmax(1) == y).float().mean())
    print(f"ResNet-20, {args.n} CIFAR-10 test images, L-inf eps {args.eps}, {args.steps} steps; clean accuracy "
          f"{clean:.1%}. Shared, noisy machine: seconds are indicative only.")
    print("| attack | robust accuracy | success rate (all images) | passes/image | seconds |")
    print("|---|---|---|---|---|")
    runs = [("FGSM", lambda: attacks.fgsm(model, x, eps, y=y)),
            ("PGD (step 2.5 eps/steps, random start)", lambda: attacks.pgd(model, x, eps, y=y, steps=args.steps)),
            ("APGD-CE", lambda: attacks.apgd(model, x, eps, y=y, steps=args.steps))]
    for name, fn in runs:
        r = fn()
        robust = float((~r.success).float().mean())
        print(f"| {name} | {robust:.1%} | {r.success_rate:.1%} | {r.passes / len(x):.2f} | {r.seconds:.1f} |")


if __name__ == "__main__":
    main()
