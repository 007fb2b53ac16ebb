"""DeepFool (L2, 50 steps, overshoot 0.02): cnnlab vs torchattacks, images/s, success and median minimal
L2 on the same pretrained CIFAR-10 ResNet-20 and images. One intra-op thread for both; order alternates
per repeat. The machine is shared and noisy: compare the ratio, not the absolute numbers.

    .venv/bin/python benchmarks/bench_attacks_deepfool.py --images 32 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench_attacks_square import alternate, pretrained_setup  # same model and images as Square


def run_cnnlab(model, x, y):  # noqa: ANN001, ANN201
    from cnnlab.attacks import deepfool
    t = time.perf_counter()
    r = deepfool(model, x, y=y, steps=50, overshoot=0.02)
    return time.perf_counter() - t, r.images


def run_torchattacks(model, x, y):  # noqa: ANN001, ANN201
    import torchattacks
    t = time.perf_counter()
    adv = torchattacks.DeepFool(model, steps=50, overshoot=0.02)(x, y)
    return time.perf_counter() - t, adv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    model, x, y = pretrained_setup(a.images)
    res = alternate({"cnnlab": run_cnnlab, "torchattacks": run_torchattacks}, a.repeats, model, x, y)
    print(f"DeepFool L2, 50 steps, overshoot 0.02, {len(x)} correctly classified CIFAR-10 test images, "
          f"cifar_resnet20, 1 thread, {a.repeats} repeats (shared noisy machine)")
    print(f"{'library':14s} {'success':>8s} {'median L2 (fooled)':>19s} {'images/s (median)':>18s}")
    ips = {}
    for name, rows in res.items():
        secs = statistics.median(r[0] for r in rows)
        adv = rows[0][1]
        with torch.no_grad():
            fooled = model(adv).argmax(1) != y
        l2 = (adv - x).flatten(1).norm(dim=1)[fooled]
        ips[name] = len(x) / secs
        print(f"{name:14s} {float(fooled.float().mean()):8.1%} {float(l2.median()):19.4f} {ips[name]:18.1f}")
    print(f"speed ratio cnnlab/torchattacks: {ips['cnnlab'] / ips['torchattacks']:.1f}x")


if __name__ == "__main__":
    main()
