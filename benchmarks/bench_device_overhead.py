"""No CPU regression from the device work: this tree against an earlier commit, side by side on this CPU.

Each measurement runs in a fresh subprocess whose PYTHONPATH is one of the two trees (the earlier commit
is checked out with `git worktree add` into a temporary folder), alternating tree order every
repetition; medians and the ratio this/earlier are printed. Measured, on real CIFAR-10 (the JPEG copy):

  train-step   ResNet-20 training through cnnlab.train.fit, batch 128, crop4+flip, channels_last: one
               epoch of --steps steps to warm up, a second one timed (its images/s)
  evaluate     cnnlab.train.evaluate of the pretrained ResNet-20 on 2,000 test images, batch 500
  predict      Classifier.probabilities of EfficientNet-Lite0 on 32 ImageNet photos at 224 px

    .venv/bin/python benchmarks/bench_device_overhead.py --prev main --steps 100 --reps 3
    # smoke check (not a result): --steps 5 --reps 1

The commit compared against is printed; on a shared machine quote the ratios of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from child import emit, run_child

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CNNLAB_SHARED", ROOT.parent / "shared")) / "data"
KINDS = ("train-step", "evaluate", "predict")


# -- children: code that both trees run (only API that existed before the device work) ------------------

def child_train_step(steps: int) -> dict:
    import torch

    import cnnlab
    from cnnlab.data import load_dataset
    from cnnlab.train import TrainConfig, fit
    data = load_dataset(str(SHARED / "cifar10_train_jpeg.npz")).subset(range(128 * steps))
    torch.manual_seed(0)
    model = cnnlab.create_model("cifar_resnet20")
    cfg = TrainConfig(model="cifar_resnet20", epochs=2, batch_size=128, lr=0.1, weight_decay=1e-4,
                      augment="crop4,flip", channels_last=True, schedule="cosine")
    res = fit(model, data, None, cfg, None, progress=False)
    return {"images_per_s": res.history[-1]["images_per_s"], "loss": res.history[-1]["train_loss"]}


def child_evaluate(reps: int = 3) -> dict:
    import cnnlab
    from cnnlab.data import load_dataset
    from cnnlab.train import evaluate
    model = cnnlab.create_model("cifar_resnet20", weights=str(SHARED / "weights/akamaster_cifar10_resnet20-12fca82f.th"))
    data = load_dataset(str(SHARED / "cifar10_test.npz")).subset(range(0, 10000, 5))
    evaluate(model, data, batch_size=500)  # warm-up
    times, top1 = [], None
    for _ in range(reps):
        t = time.perf_counter()
        top1 = evaluate(model, data, batch_size=500).top1
        times.append(time.perf_counter() - t)
    return {"images_per_s": len(data) / statistics.median(times), "top1": top1}


def child_predict(reps: int = 3) -> dict:
    import numpy as np

    import cnnlab
    from cnnlab.data import open_dataset
    model = cnnlab.create_model("efficientnet_lite0", pretrained=True)
    part = open_dataset(str(SHARED / "imagenet_samples_256_even.npz")).all().subset(np.arange(32))
    x = cnnlab.load_images([part.file(i) for i in range(32)], model)
    model.probabilities(x, batch_size=32)  # warm-up (builds the inference twin)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        model.probabilities(x, batch_size=32)
        times.append(time.perf_counter() - t)
    return {"images_per_s": 32 / statistics.median(times)}


def child(kind: str, steps: int) -> None:
    import torch
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    out = {"train-step": lambda: child_train_step(steps), "evaluate": child_evaluate, "predict": child_predict}[kind]()
    emit(out)


# -- parent ---------------------------------------------------------------------------------------------

def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prev", default="main", help="the earlier commit (default: main)")
    ap.add_argument("--steps", type=int, default=100, help="training steps per epoch (one warm-up, one timed)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.steps)
        return
    prev = _git("rev-parse", a.prev)
    this = _git("rev-parse", "HEAD") + ("+changes" if _git("status", "--porcelain", "--untracked-files=no") else "")
    with tempfile.TemporaryDirectory(prefix="cnnlab-prev-") as tmp:
        tree = Path(tmp) / "tree"
        _git("worktree", "add", "--detach", str(tree), prev)
        try:
            trees = {"this": ROOT, "earlier": tree}
            rows: dict[tuple[str, str], list[dict]] = {}
            print(f"# this {this} vs earlier {prev}; load average {os.getloadavg()}", flush=True)
            for rep in range(a.reps):
                order = list(trees) if rep % 2 == 0 else list(reversed(trees))
                for kind in a.kinds.split(","):
                    for name in order:
                        r, err = run_child(__file__, ["--child", kind, "--steps", str(a.steps)],
                                           {**os.environ, "PYTHONPATH": str(trees[name])}, trees[name])
                        if r is None:
                            raise SystemExit(f"{kind} in {name} failed:\n{err[-3000:]}")
                        rows.setdefault((kind, name), []).append(r)
                        print(f"rep {rep + 1} {kind:10s} {name:8s} {r['images_per_s']:8.1f} img/s "
                              f"{json.dumps({k: v for k, v in r.items() if k != 'images_per_s'})}", flush=True)
        finally:
            _git("worktree", "remove", "--force", str(tree))
    summary = {}
    for kind in a.kinds.split(","):
        med = {n: statistics.median(r["images_per_s"] for r in rows[(kind, n)]) for n in ("this", "earlier")}
        summary[kind] = {**med, "ratio_this_over_earlier": med["this"] / med["earlier"]}
        print(f"{kind:10s} this {med['this']:8.1f} img/s   earlier {med['earlier']:8.1f} img/s   "
              f"ratio {med['this'] / med['earlier']:.3f}")
    print("JSON " + json.dumps({"this": this, "earlier": prev, "steps": a.steps, "reps": a.reps,
                                "load_average_end": os.getloadavg(), "summary": summary}))


if __name__ == "__main__":
    main()
