"""Claim: the numpy forward pass runs the course's simple CNN on 1000 real CIFAR-10 images within a
small factor of PyTorch eager, with the same predictions.

Side by side in one process, interleaved, median of --repeats: PyTorch eager (inference_mode, batches
of 100) vs `numpy_forward` (precompiled program, batches of 100), on 1000 shuffled CIFAR-10 test
images from ../shared/data. Also the pretrained ResNet-20 (real weights), whose accuracy must match.

    .venv/bin/python benchmarks/bench_reference_numpy_forward.py [--repeats 3] [--n 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import cnnlab
from cnnlab.reference import compile_numpy, numpy_forward

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def torch_forward(model: torch.nn.Module, x: torch.Tensor, batch: int = 100) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]).numpy()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    d = np.load(SHARED / "cifar10_test.npz")
    idx = np.random.default_rng(0).permutation(len(d["y"]))[:a.n]
    x = torch.from_numpy(d["x"][idx]).permute(0, 3, 1, 2).float() / 255
    y = d["y"][idx]
    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} (shared: compare ratios); "
          f"{a.n} CIFAR-10 test images, batches of 100, {a.threads} threads")
    torch.manual_seed(0)
    models = {"simple_cnn": cnnlab.create_model("simple_cnn").eval(),
              "cifar_resnet20": cnnlab.create_model("cifar_resnet20",
                                                    weights=SHARED / "weights/akamaster_cifar10_resnet20-12fca82f.th")}
    results = {}
    for name, model in models.items():
        program = compile_numpy(model)
        times: dict[str, list[float]] = {"torch": [], "numpy": []}
        ref = out = None
        for _ in range(a.repeats):
            t = time.perf_counter()
            ref = torch_forward(model, x)
            times["torch"].append(time.perf_counter() - t)
            t = time.perf_counter()
            out = numpy_forward(model, x, program=program)
            times["numpy"].append(time.perf_counter() - t)
        tt, tn = statistics.median(times["torch"]), statistics.median(times["numpy"])
        err = float(np.abs(out - ref).max() / max(1.0, np.abs(ref).max()))
        same = float((out.argmax(1) == ref.argmax(1)).mean())
        acc = (float((out.argmax(1) == y).mean()), float((ref.argmax(1) == y).mean()))
        results[name] = {"torch_s": tt, "numpy_s": tn, "ratio": tn / tt, "max_rel_error": err,
                         "same_top1": same, "accuracy_numpy_torch": acc}
        print(f"{name:<15} PyTorch {tt * 1e3:8.1f} ms ({a.n / tt:6.0f} img/s)   numpy {tn * 1e3:8.1f} ms "
              f"({a.n / tn:6.0f} img/s)   numpy/PyTorch {tn / tt:5.2f}x   max rel error {err:.1e}   "
              f"same top-1 {same:.1%}   accuracy numpy {acc[0]:.1%} / torch {acc[1]:.1%}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
