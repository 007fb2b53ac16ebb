"""Feature visualization cost: seconds for N optimization steps at 224 px (EfficientNet-Lite0) and at
32 px (ResNet-20 on a 128 px canvas), without and with the default regularization, side by side.

Prints wall and CPU seconds per run, seconds per step, and how far the objective rose above its value
on real photos (the point of the exercise).

    .venv/bin/python benchmarks/bench_explain_featvis.py --steps 256
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CNNLAB_SHARED", ROOT.parent / "shared")) / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--skip-cifar", action="store_true")
    ap.add_argument("--only", default=None, help="run only these objectives, e.g. middle:3")
    ap.add_argument("--save", default=None, help="directory for the optimized images (PNG)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    import cnnlab
    from cnnlab import explain
    print(f"feature visualization, {a.steps} steps, torch threads 2, load avg {os.getloadavg()[0]:.1f} "
          "(shared machine: wall times are noisy; CPU seconds are steadier)")
    cases = []
    lite0 = cnnlab.create_model("efficientnet_lite0", pretrained=True)
    photos = cnnlab.load_images(list(cnnlab.images.bundled_photos().values()), lite0)
    cases.append(("efficientnet_lite0 224px", lite0, photos, ["middle:3", "class:tabby"]))
    if not a.skip_cifar:
        w = SHARED / "weights/akamaster_cifar10_resnet20-12fca82f.th"
        import numpy as np
        r20 = cnnlab.create_model("cifar_resnet20", weights=w)
        d = np.load(SHARED / "cifar10_test.npz")
        x = torch.from_numpy(d["x"][::40]).permute(0, 3, 1, 2).float() / 255
        cases.append(("cifar_resnet20 32px (128px canvas)", r20, x, ["layer3:10", "class:cat"]))
    for title, model, real, specs in cases:
        for spec in specs:
            if a.only and spec not in a.only.split(","):
                continue
            obj = explain.parse_objective(model, spec)
            ref = explain.objective_value(model, obj, real)
            for regs in ("none", "default"):
                t0, c0 = time.perf_counter(), time.process_time()
                v = explain.visualize(model, obj, steps=a.steps, regularizers=regs)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                if a.save:
                    v.save(Path(a.save) / f"{model.name}_{spec.replace(':', '_')}_{regs}.png")
                print(f"{title:36s} {spec:12s} {regs:8s} wall {wall:7.1f} s ({1000 * wall / a.steps:6.1f} ms/step) "
                      f"cpu {cpu:7.1f} s | objective {v.final_value:8.2f} vs real photos max {float(ref.max()):.2f} "
                      f"mean {float(ref.mean()):.2f}", flush=True)


if __name__ == "__main__":
    main()
