"""Is bf16 mixed precision faster than fp32 on this CPU? (It decides what `--precision auto` means on a CPU.)

Side by side, each configuration in a fresh subprocess, alternating, --reps times, on real CIFAR-10 (the
JPEG copy): ResNet-20 training through cnnlab.train.fit (batch 128, crop4+flip, channels_last; one epoch of
--steps steps to warm up, a second timed) and cnnlab.train.evaluate of the pretrained ResNet-20 on 2,000
test images (batch 500), each with --precision fp32 and bf16 (torch.autocast on the CPU). Also printed:
the training loss after the timed epoch and the test accuracy, so a faster format that computes something
else shows.

    .venv/bin/python benchmarks/bench_device_cpu_precision.py --steps 60 --reps 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from child import emit, run_child

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CNNLAB_SHARED", ROOT.parent / "shared")) / "data"
CONFIGS = [("train-step", "fp32"), ("train-step", "bf16"), ("evaluate", "fp32"), ("evaluate", "bf16")]


def child(kind: str, precision: str, steps: int) -> dict:
    import torch
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    import cnnlab
    from cnnlab.data import load_dataset
    from cnnlab.train import TrainConfig, evaluate, fit
    if kind == "train-step":
        data = load_dataset(str(SHARED / "cifar10_train_jpeg.npz")).subset(range(128 * steps))
        torch.manual_seed(0)
        model = cnnlab.create_model("cifar_resnet20", device="cpu")
        cfg = TrainConfig(model="cifar_resnet20", epochs=2, batch_size=128, lr=0.1, weight_decay=1e-4,
                          augment="crop4,flip", channels_last=True, schedule="cosine", precision=precision)
        row = fit(model, data, None, cfg, None, progress=False).history[-1]
        return {"images_per_s": row["images_per_s"], "train_loss": row["train_loss"]}
    model = cnnlab.create_model("cifar_resnet20", weights=str(SHARED / "weights/akamaster_cifar10_resnet20-12fca82f.th"),
                                device="cpu")
    data = load_dataset(str(SHARED / "cifar10_test.npz")).subset(range(0, 10000, 5))
    evaluate(model, data, batch_size=500, precision=precision)
    times, top1 = [], None
    for _ in range(3):
        t = time.perf_counter()
        top1 = evaluate(model, data, batch_size=500, precision=precision).top1
        times.append(time.perf_counter() - t)
    return {"images_per_s": len(data) / statistics.median(times), "top1": top1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        emit(child(*a.child, a.steps))
        return
    rows: dict[tuple[str, str], list[dict]] = {}
    print(f"# load average at start {os.getloadavg()} (a shared machine: quote the ratios)", flush=True)
    for rep in range(a.reps):
        for kind, precision in (CONFIGS if rep % 2 == 0 else list(reversed(CONFIGS))):
            r, err = run_child(__file__, ["--child", kind, precision, "--steps", str(a.steps)],
                               {**os.environ, "PYTHONPATH": str(ROOT)}, ROOT)
            if r is None:
                raise SystemExit(f"{kind} {precision} failed:\n{err[-3000:]}")
            rows.setdefault((kind, precision), []).append(r)
            print(f"rep {rep + 1} {kind:10s} {precision} {r['images_per_s']:8.1f} img/s "
                  f"{json.dumps({k: v for k, v in r.items() if k != 'images_per_s'})}", flush=True)
    summary = {}
    for kind in ("train-step", "evaluate"):
        med = {p: statistics.median(r["images_per_s"] for r in rows[(kind, p)]) for p in ("fp32", "bf16")}
        summary[kind] = {**med, "bf16_over_fp32": med["bf16"] / med["fp32"]}
        print(f"{kind:10s} fp32 {med['fp32']:8.1f} img/s   bf16 {med['bf16']:8.1f} img/s   "
              f"bf16/fp32 {med['bf16'] / med['fp32']:.2f}")
    import torch
    print("JSON " + json.dumps({"summary": summary, "steps": a.steps, "reps": a.reps, "torch": torch.__version__,
                                "cpu_bf16_instructions": _cpu_flags(), "load_average_end": os.getloadavg()}))


def _cpu_flags() -> list[str]:
    """The CPU's bf16-related instruction sets (AVX512_BF16, AMX): what makes bf16 fast on a CPU."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return []
    return sorted(f for f in flags if "bf16" in f or f.startswith("amx") or f == "avx512f")


if __name__ == "__main__":
    main()
