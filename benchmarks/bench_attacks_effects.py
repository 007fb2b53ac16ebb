"""What the issue-9 attacks do to the pretrained CIFAR-10 ResNet-20 (JPEG-75 test images): spatial attack
accuracy (full 31x5x5 grid) next to the worst fixed transform, adversarial patch held-out success,
plain transfer ResNet-20 -> ResNet-32 vs a Papernot substitute vs random sign noise, and fooling images.
Effect sizes, not timings (the shared machine is noisy; seconds are indicative only). One thread.

    .venv/bin/python benchmarks/bench_attacks_effects.py --images 200
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench_attacks_square import SHARED


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    a = ap.parse_args()
    torch.set_num_threads(1)
    import cnnlab
    from cnnlab.attacks import (adversarial_patch, fooling_evolve, fooling_gradient, spatial_eval,
                                substitute_attack, transfer_attack)
    w = SHARED / "weights"
    m20 = cnnlab.create_model("cifar_resnet20", weights=w / "akamaster_cifar10_resnet20-12fca82f.th").eval()
    m32 = cnnlab.create_model("cifar_resnet32", weights=w / "akamaster_cifar10_resnet32-d509ac18.th").eval()
    d = np.load(SHARED / "cifar10_test.npz")
    idx = np.random.default_rng(1).permutation(len(d["y"]))[:2 * a.images]
    x = torch.from_numpy(d["x"][idx]).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(d["y"][idx].astype(np.int64))
    xs, ys = x[:a.images], y[:a.images]

    t = time.perf_counter()
    ev = spatial_eval(m20, xs, ys)
    print("\n".join(ev.lines()) + f"   [{time.perf_counter() - t:.0f} s]")

    nt = y != 0
    xa = x[nt]
    half = len(xa) // 2
    for area in (0.05, 0.1):
        p = adversarial_patch(m20, xa[:half], "airplane", x_test=xa[half:], area=area, steps=300, seed=0)
        noise = cnnlab.attacks.patch.patch_success(m20, torch.rand_like(p.patch), xa[half:], 0)
        print(f"patch -> airplane, {p.area:.1%} of the image, 300 steps on {half} images: train {p.train_success:.1%}, "
              f"held-out {p.heldout_success:.1%} ({p.heldout_n} images x 4 placements); random-noise patch "
              f"{noise:.1%}   [{p.seconds:.0f} s]")

    eps = 8 / 255
    tr = transfer_attack(m20, m32, xs, ys, eps=eps, steps=10)
    print(f"plain transfer PGD-10 {eps * 255:.0f}/255 resnet20 -> resnet32: target acc {tr.target_top1:.1%} -> "
          f"{tr.target_robust_top1:.1%}, transfer rate {tr.transfer_rate:.1%}")
    for seeds in (50, 150):
        sa = substitute_attack(m20, xs, y=ys, eps=eps, steps=10, seeds=x[a.images:a.images + seeds], rounds=4, seed=0)
        with torch.no_grad():
            acc = float((m20(sa.result.images).argmax(1) == ys).float().mean())
        print(f"Papernot substitute ({seeds} seeds, 4 rounds, {sa.substitute.queries} oracle label queries, agreement "
              f"{sa.substitute.rounds[-1]['agreement_on_seeds']:.0%} on seeds): resnet20 acc under it {acc:.1%}")
    gen = torch.Generator().manual_seed(0)
    noise = (xs + eps * (torch.randint(0, 2, xs.shape, generator=gen) * 2 - 1)).clamp(0, 1)
    with torch.no_grad():
        print(f"resnet20 acc clean {float((m20(xs).argmax(1) == ys).float().mean()):.1%}, under random +-8/255 sign "
              f"noise {float((m20(noise).argmax(1) == ys).float().mean()):.1%}")

    fg = fooling_gradient(m20, list(range(10)))
    fe = fooling_evolve(m20, list(range(10)))
    print(f"fooling images, all 10 classes: gradient {fg.success_rate:.0%} >= 99% after median "
          f"{int(np.median(fg.calls))} steps; evolution (outputs only) {fe.success_rate:.0%} after median "
          f"{int(np.median(fe.calls))} queries (max {max(fe.calls)})")


if __name__ == "__main__":
    main()
