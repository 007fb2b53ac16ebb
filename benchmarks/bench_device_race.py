"""The airbench recipe against airbench94 on one GPU: the training seconds cnnlab needs to reach airbench94's own
final accuracy (its 6-view TTA), against airbench94's training seconds (its own CUDA-event timer: whitening init +
epochs; cnnlab: its epochs, whitening init excluded). airbench94's complete training, then cnnlab's airbench recipe
(`cnnlab.train("airbench", ...)`, --cnnlab-epochs, validating after every epoch with the recipe's 6-view TTA), each
after a short warm-up run (cuDNN autotuning). On a GPU airbench94 runs as published (fp16, channels_last), cnnlab
in its --precision auto. Prints one line starting with RESULT (benchmarks/device_check.sh collects it). The
CPU's fair, alternating race is bench_train_vs_airbench94.py --race; this one is for a GPU.

    python benchmarks/bench_device_race.py --device cuda          # on a GPU machine: about 1-2 min
    # smoke check on the CPU (not a result): --device cpu --limit 2048 --test-limit 500 --epochs 1 --cnnlab-epochs 1
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_vs_airbench94 import _threads, install_cpu_shims, prepare_data


def _airbench94_training(epochs: float | None) -> dict:
    """airbench94's complete training on the device its loader uses; per-epoch accuracy (no TTA), the final
    accuracy with its 6-view TTA, and its training seconds (its own timer, the final evaluation excluded)."""
    import airbench.utils as abu
    from airbench.lib_airbench94 import hyp, train94
    log: list[dict] = []
    original = abu.print_training_details
    abu.print_training_details = lambda variables, is_final_entry: log.append(
        {k: variables.get(k) for k in ("epoch", "val_acc", "tta_val_acc", "total_time_seconds")})
    try:
        model = train94(epochs=epochs if epochs else hyp["opt"]["train_epochs"])
    finally:
        abu.print_training_details = original
    per_epoch = [r for r in log if isinstance(r["epoch"], int)]
    return {"model": model, "per_epoch": per_epoch, "final_acc": log[-1]["tta_val_acc"],
            "train_s": per_epoch[-1]["total_time_seconds"]}


def run_race(a, workdir: Path) -> None:
    """airbench94, then cnnlab's recipe, on one device; one line: cnnlab's time to airbench94's final accuracy."""
    import contextlib
    import io

    import numpy as np
    import torch

    import cnnlab
    from cnnlab.data import ImageArrays
    from cnnlab.devices import describe_device, resolve_device, resolve_precision
    os.chdir(workdir)
    device = resolve_device(a.device)
    if device.type == "cpu":
        install_cpu_shims()
    elif device != torch.device("cuda", 0):
        raise SystemExit("airbench94 runs on cuda:0 (its loader's default); use --device cuda or CUDA_VISIBLE_DEVICES.")
    _threads(a.threads)
    from airbench.lib_airbench94 import train94
    with contextlib.redirect_stdout(io.StringIO()):  # its warm-up: one step (cuDNN autotuning, kernel loading)
        train94(run=-1, verbose=True)
    ab = _airbench94_training(a.epochs)
    target = ab["final_acc"]
    tr, te = torch.load("cifar10/train.pt"), torch.load("cifar10/test.pt")
    train = ImageArrays(tr["images"].permute(0, 3, 1, 2).contiguous(), tr["labels"], tr["classes"], "cifar10-train")
    np.savez("test.npz", x=te["images"].numpy(), y=te["labels"].numpy(), classes=np.array(te["classes"]))
    cnnlab.train("airbench", data=train, val="test.npz", epochs=1, limit=2048, out="warmup", device=a.device,
                 progress=False)  # warm-up: the same shapes, so cuDNN's autotuning is done before the timed run
    t0 = time.time()
    run = cnnlab.train("airbench", data=train, val="test.npz", epochs=a.cnnlab_epochs, out="cnnlab-run",
                       device=a.device, progress=False)
    wall = time.time() - t0
    rows = run.metrics()
    hit = next((r for r in rows if r["val_top1"] >= target), None)
    ours = f"{hit['elapsed_s']:.2f} s (epoch {hit['epoch']})" if hit else f"not reached in {len(rows)} epochs"
    ratio = f", {hit['elapsed_s'] / ab['train_s']:.2f}x its time" if hit else ""
    line = (f"airbench recipe to airbench94's final {target:.2%} (6-view TTA) on {describe_device(device)}: cnnlab "
            f"{ours} vs airbench94 {ab['train_s']:.2f} s{ratio}; cnnlab final {rows[-1]['val_top1']:.2%} after "
            f"{len(rows)} epochs ({resolve_precision('auto', device)}, {rows[-1]['elapsed_s']:.2f} s training, "
            f"{wall:.1f} s wall with evaluation)")
    print(json.dumps({"airbench94": {k: v for k, v in ab.items() if k != "model"}, "target": target,
                      "cnnlab_per_epoch": [{"epoch": r["epoch"], "val_top1": r["val_top1"], "train_s": r["elapsed_s"]}
                                           for r in rows], "cnnlab_wall_s": wall}, indent=1, default=str))
    print("RESULT " + line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (a GPU; airbench94 needs cuda:0) or cpu (smoke check)")
    ap.add_argument("--cnnlab-epochs", type=int, default=12, help="epochs of cnnlab's recipe")
    ap.add_argument("--epochs", type=float, default=None, help="airbench94's epochs instead of its 9.9 (smoke checks)")
    ap.add_argument("--limit", type=int, default=None, help="seeded subset of the training images (smoke checks)")
    ap.add_argument("--test-limit", type=int, default=None, help="seeded subset of the test images (smoke checks)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "2")))
    a = ap.parse_args()
    try:
        import airbench  # noqa: F401
    except ImportError:
        raise SystemExit("airbench is not installed: pip install airbench==0.1.8 (the bench extra)") from None
    with tempfile.TemporaryDirectory(prefix="airbench94-") as tmp:
        run_race(a, prepare_data(Path(tmp), a.limit, a.test_limit))


if __name__ == "__main__":
    main()
