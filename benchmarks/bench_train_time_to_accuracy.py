"""Time to accuracy on CIFAR-10 (train: the 50k JPEG-75 copy; test: cifar10_test.npz), this CPU.

Trains with the fastest recipe cnnlab has (`cnnlab train --model airbench`, whose recommended options
are the recipe: 2x2 whitening conv initialized from the data's patch covariance and frozen, BN with
frozen scale, GELU, Muon for the filters and Nesterov SGD with a high lr for the biases, a linear lr
schedule over 12 epochs, label smoothing 0.2, EMA of the weights, batches of 1024 of which a
small proxy picks the hardest 512, ±2 px translate + alternating flip, 6-view TTA in evaluation), through
the product's own `cnnlab.train`, evaluating on the full test set after every epoch. Prints the training
minutes (evaluation excluded) at which test top-1 first reached 80/85/90/90.5% (90.5%: the record's
accuracy), and peak RSS.

    .venv/bin/python benchmarks/bench_train_time_to_accuracy.py --out /tmp/tta
    # a named option of the airbench recipe on top (cnnlab.models.airbench.OPTIONS), or any TrainConfig value:
    .venv/bin/python benchmarks/bench_train_time_to_accuracy.py --epochs 10 --option record_schedule \
        --set optimizer='"sgd"' --out /tmp/m
    # quick recipe checks on a subset:
    .venv/bin/python benchmarks/bench_train_time_to_accuracy.py --limit 5000 --test-limit 2000 --epochs 4 \
        --widths 32,64,64 --out /tmp/tta-small

The record to beat (ANCHORS.md): airbench94 itself, fp32 eager on this machine, 90.50% (with its 6-view
TTA) after 9.9 epochs; its time today comes from benchmarks/bench_train_vs_airbench94.py, side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from bench_train_vs_airbench94 import cnnlab_options

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CNNLAB_SHARED", ROOT.parent / "shared")) / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--limit", type=int, default=None, help="train on a seeded subset")
    ap.add_argument("--test-limit", type=int, default=None, help="evaluate on a seeded test subset")
    ap.add_argument("--widths", default="64,256,256")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--wd", type=float, default=None)
    ap.add_argument("--ema", type=float, default=None)
    ap.add_argument("--bias-lr-mult", type=float, default=None)
    ap.add_argument("--label-smoothing", type=float, default=None)
    ap.add_argument("--tta", default=None, help="none|flip|flip-translate (default: the recipe's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--option", action="append", default=[],
                    help="a named option of the airbench recipe to switch on (cnnlab.models.airbench.OPTIONS)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="any TrainConfig value, e.g. tta=\"none\" or freeze_after={}")
    ap.add_argument("--json-out", default=None, help="also write the result as JSON here")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    opts = cnnlab_options(a.option, a.set)  # an unknown option stops here, before the data loads

    import torch

    import cnnlab
    from cnnlab.data import load_dataset
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    train = load_dataset(str(SHARED / "cifar10_train_jpeg.npz"))
    test = load_dataset(str(SHARED / "cifar10_test.npz"))
    if a.test_limit:
        sel = torch.randperm(len(test), generator=torch.Generator().manual_seed(1))[:a.test_limit]
        test = test.subset(sel.sort().values)
    test_path = Path(a.out + "-test.npz")
    import numpy as np
    np.savez(test_path, x=test.x.permute(0, 2, 3, 1).numpy(), y=test.y.numpy(), classes=np.array(test.classes))
    opts.update({k: v for k, v in dict(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.wd,
                                       ema=a.ema, bias_lr_mult=a.bias_lr_mult, label_smoothing=a.label_smoothing,
                                       tta=a.tta).items() if v is not None})
    print(f"# load average at start: {os.getloadavg()} (shared machine: absolute times are inflated)", flush=True)
    t0 = time.time()
    run = cnnlab.train("airbench", data=train, val=str(test_path), out=a.out, seed=a.seed,
                       limit=a.limit, model_kwargs={"widths": a.widths} if a.widths != "64,256,256" else {},
                       progress=False, **opts)
    wall = time.time() - t0
    rows = run.metrics()
    hits = {}
    for thr in (0.80, 0.85, 0.90, 0.905):
        hit = next((r for r in rows if r["val_top1"] >= thr), None)
        hits[f"{100 * thr:g}%"] = None if hit is None else {"epoch": hit["epoch"], "train_min": hit["elapsed_s"] / 60}
    result = {"config": run.config["config"], "options": a.option, "set": a.set, "per_epoch": [
        {"epoch": r["epoch"], "test_top1_tta": r["val_top1"], "raw_top1": r.get("val_top1_raw"),
         "train_min": r["elapsed_s"] / 60, "img_per_s": r["images_per_s"]} for r in rows],
        "hits": hits, "final_top1": rows[-1]["val_top1"], "train_min": rows[-1]["elapsed_s"] / 60,
        "wall_min": wall / 60, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average_end": os.getloadavg()}
    print(json.dumps(result, indent=1))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(result, indent=1))
    print(f"time to accuracy (training minutes, evaluation excluded): {json.dumps(hits)}")
    print(f"wall {wall / 60:.1f} min; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
