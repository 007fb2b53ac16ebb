"""Square Attack (L-inf): cnnlab vs torchattacks on the same pretrained CIFAR-10 ResNet-20, images,
eps and query budget. Both models are wrapped by the same counter of images forwarded, so
"queries per image" and "queries per success" mean the same thing for both (every forward of one image
is one query, the clean one included). One intra-op thread for both; order alternates per repeat.
The machine is shared and noisy: compare the ratio, not the absolute seconds.

    .venv/bin/python benchmarks/bench_attacks_square.py --images 32 --queries 1000 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


class Counted(torch.nn.Module):
    """Forwards to the model and counts the images it was shown."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        return self.model(x)


def data(model, n: int):  # noqa: ANN001, ANN201
    d = np.load(SHARED / "cifar10_test.npz")
    idx = np.random.default_rng(0).permutation(len(d["y"]))[:4 * n]
    x = torch.from_numpy(d["x"][idx]).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(d["y"][idx].astype(np.int64))
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    return x[ok][:n], y[ok][:n]


def pretrained_setup(n: int):  # noqa: ANN201
    """The published CIFAR-10 ResNet-20 (eval mode, one thread) and `n` test images it classifies correctly."""
    torch.set_num_threads(1)
    import cnnlab
    model = cnnlab.create_model("cifar_resnet20", weights=SHARED / "weights/akamaster_cifar10_resnet20-12fca82f.th")
    model.eval()
    return (model, *data(model, n))


def alternate(runs: dict, repeats: int, *args) -> dict[str, list]:  # noqa: ANN002
    """Each run's results over `repeats` rounds, the order reversed every other round."""
    res: dict[str, list] = {k: [] for k in runs}
    for rep in range(repeats):
        for name in (list(runs) if rep % 2 == 0 else list(runs)[::-1]):
            res[name].append(runs[name](*args))
    return res


def run_cnnlab(model, x, y, eps, queries):  # noqa: ANN001, ANN201
    from cnnlab.attacks import square
    c = Counted(model).eval()  # a fresh Module is in train mode; attacks restore it and its children
    t = time.perf_counter()
    r = square(c, x, eps, queries=queries, y=y, seed=0)
    s = time.perf_counter() - t
    with torch.no_grad():
        fooled = model(r.images).argmax(1) != y
    return s, fooled, c.images


def run_torchattacks(model, x, y, eps, queries):  # noqa: ANN001, ANN201
    import torchattacks
    c = Counted(model).eval()  # a fresh Module is in train mode; attacks restore it and its children
    atk = torchattacks.Square(c, eps=eps, n_queries=queries, seed=0)
    t = time.perf_counter()
    adv = atk(x, y)
    s = time.perf_counter() - t
    with torch.no_grad():
        fooled = model(adv).argmax(1) != y
    return s, fooled, c.images


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--eps", type=float, default=8 / 255)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    model, x, y = pretrained_setup(a.images)
    res = alternate({"cnnlab": run_cnnlab, "torchattacks": run_torchattacks}, a.repeats, model, x, y, a.eps,
                    a.queries)
    print(f"Square Attack L-inf eps {a.eps * 255:.0f}/255, budget {a.queries} queries, {len(x)} correctly "
          f"classified CIFAR-10 test images, cifar_resnet20, 1 thread, {a.repeats} repeats (shared noisy machine)")
    print(f"{'library':14s} {'success':>8s} {'queries/image':>14s} {'queries/success':>16s} {'s/image (median)':>17s}")
    med = {}
    for name, rows in res.items():
        secs = statistics.median(r[0] for r in rows)
        fooled, q = rows[0][1], rows[0][2]
        med[name] = secs / len(x)
        print(f"{name:14s} {float(fooled.float().mean()):8.1%} {q / len(x):14.1f} "
              f"{q / max(1, int(fooled.sum())):16.1f} {secs / len(x):17.4f}")
    print(f"time ratio cnnlab/torchattacks: {med['cnnlab'] / med['torchattacks']:.2f}")


if __name__ == "__main__":
    main()
