"""Training throughput: ResNet-20, batch 128, real CIFAR-10 (../shared/data JPEG copy), images/s.

Side by side, each configuration in its own fresh subprocess (the allocator and OpenMP settings are
process-wide), alternating, `--reps` times; medians and ratios are printed:

  course      the loop as the course notebooks write it (../shared/seeds): a torchvision-style Dataset
              returning PIL images, RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor +
              Normalize, DataLoader with 2 workers, the model in PyTorch's default (NCHW) memory
              format, plain SGD step; torch imported before anything of cnnlab, and the allocator
              left alone (CNNLAB_TUNE_MALLOC=0), as in a notebook that never imports cnnlab.
  course-cl   the same loop with the model and batches in channels_last: ANCHORS.md's "course-style
              loop" (a stricter reference than the notebooks).
  cnnlab      cnnlab.train.fit: uint8 dataset in memory, whole-batch crop/flip as tensor ops,
              channels_last, allocator tuned (glibc keeps freed buffers), the full loop (lr schedule,
              finite-loss check, metrics) — what `cnnlab train` runs.
  cnnlab-nomalloc   the same with CNNLAB_TUNE_MALLOC=0 (what the allocator setting is worth).

Also: FLOP per training image (torch.utils.flop_counter over one step) -> achieved GFLOP/s against the
fp32 2048x2048 matmul rate of torch.mm (MKL) and of oneDNN measured in the same run (on this AMD
AVX-512 machine MKL's sgemm runs its AVX2 code, about half of what oneDNN's convolutions reach), and
peak RSS per configuration.

    .venv/bin/python benchmarks/bench_train_throughput.py --steps 40 --reps 3
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CNNLAB_SHARED", ROOT.parent / "shared")) / "data"


def _train_arrays(n: int):
    from cnnlab.data import load_dataset
    d = load_dataset(str(SHARED / "cifar10_train_jpeg.npz"))
    return d.subset(range(n))


def run_course(steps: int, warmup: int, batch: int, channels_last: bool) -> dict:
    import torch  # first: OpenMP starts with its own defaults, not the setting `import cnnlab` makes
    import torch.nn.functional as F
    from PIL import Image
    from torchvision import transforms

    from cnnlab.models.cifar_resnet import CifarResNet  # the bare nn.Module: no Classifier, no allocator tuning
    data = _train_arrays(batch * (steps + warmup))
    x_nhwc = data.x.permute(0, 2, 3, 1).numpy()
    y = data.y.numpy()

    class CifarLike(torch.utils.data.Dataset):  # what torchvision.datasets.CIFAR10 does per item
        def __init__(self, tf):
            self.tf = tf

        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return self.tf(Image.fromarray(x_nhwc[i])), int(y[i])

    tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))])
    loader = torch.utils.data.DataLoader(CifarLike(tf), batch_size=batch, shuffle=True, num_workers=2, drop_last=True)
    torch.manual_seed(0)
    net = CifarResNet(20).train()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    t0, n = None, 0
    for i, (xb, yb) in enumerate(loader):
        if i == warmup:
            t0 = time.perf_counter()
        xb = xb.contiguous(memory_format=layout)
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if t0 is not None:
            n += len(yb)
    dt = time.perf_counter() - t0
    return {"images_per_s": n / dt, "images": n, "seconds": dt}


def run_cnnlab(steps: int, warmup: int, batch: int) -> dict:
    import torch

    import cnnlab
    from cnnlab.train import TrainConfig, fit
    # epoch 1 = warm-up steps, epoch 2 = timed: the same data size per epoch
    data = _train_arrays(batch * steps)
    torch.manual_seed(0)
    model = cnnlab.create_model("cifar_resnet20")
    cfg = TrainConfig(model="cifar_resnet20", epochs=2, batch_size=batch, lr=0.1, weight_decay=1e-4,
                      augment="crop4,flip", channels_last=True, schedule="cosine")
    res = fit(model, data, None, cfg, None, progress=False)
    row = res.history[-1]
    return {"images_per_s": row["images_per_s"], "images": batch * steps, "seconds": row["epoch_s"],
            "epoch1_images_per_s": res.history[0]["images_per_s"]}


def flop_per_image(batch: int) -> float:
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    import cnnlab
    model = cnnlab.create_model("cifar_resnet20").train()
    x, y = torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x), y).backward()
    return fc.get_total_flops() / batch


def matmul_gflops(n: int = 2048, reps: int = 10) -> dict:
    """fp32 n x n matmul rate of this process now (median of reps): torch.mm (MKL) and oneDNN's matmul."""
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    engines = {"mkl": lambda: a @ b}
    try:
        onednn = torch.ops.mkldnn._linear_pointwise
        engines["onednn"] = lambda: onednn(a, b, None, "none", [], "")
    except (AttributeError, RuntimeError):
        pass
    rates = {}
    for name, fn in engines.items():
        fn()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        rates[name] = 2 * n ** 3 / statistics.median(times) / 1e9
    return rates


def child(mode: str, steps: int, warmup: int, batch: int) -> None:
    import torch
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    if mode.startswith("course"):
        out = run_course(steps, warmup, batch, channels_last=mode == "course-cl")
    else:
        out = run_cnnlab(steps, warmup, batch)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["children_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--child", default=None)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.steps, a.warmup, a.batch)
        return
    modes = {"course": {"CNNLAB_TUNE_MALLOC": "0"}, "course-cl": {"CNNLAB_TUNE_MALLOC": "0"}, "cnnlab": {},
             "cnnlab-nomalloc": {"CNNLAB_TUNE_MALLOC": "0"}}
    results: dict[str, list[dict]] = {m: [] for m in modes}
    print(f"# ResNet-20 training, batch {a.batch}, {a.steps} timed steps, {a.reps} reps, real CIFAR-10 (JPEG copy)")
    print(f"# load average at start: {os.getloadavg()}  (the machine is shared: absolute numbers are noisy)")
    for rep in range(a.reps):
        for mode, env in modes.items():
            cmd = [sys.executable, __file__, "--child", "cnnlab" if mode.startswith("cnnlab") else mode,
                   "--steps", str(a.steps), "--warmup", str(a.warmup), "--batch", str(a.batch)]
            done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, cwd=ROOT)
            line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                print(f"{mode} failed:\n{done.stderr[-2000:]}")
                continue
            r = json.loads(line[7:])
            results[mode].append(r)
            print(f"rep {rep + 1} {mode:16s} {r['images_per_s']:7.1f} img/s  peak RSS {r['peak_rss_mb']:.0f} MB"
                  f" (+workers {r['children_peak_rss_mb']:.0f} MB)", flush=True)
    flop = flop_per_image(a.batch)
    import torch
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    rates = matmul_gflops()
    peak = max(rates.values())
    print("fp32 2048x2048 matmul now: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items())
          + " (ANCHORS.md measured ~108 with torch.mm earlier)")
    med = {m: statistics.median(r["images_per_s"] for r in rs) for m, rs in results.items() if rs}
    print(f"\nFLOP per training image (fwd+bwd, counted): {flop / 1e6:.0f} MFLOP")
    print(f"{'config':16s} {'median img/s':>12s} {'vs course':>10s} {'GFLOP/s':>8s} {'% of peak':>11s}")
    for m, v in med.items():
        g = v * flop / 1e9
        print(f"{m:16s} {v:12.1f} {v / med.get('course', v):9.2f}x {g:8.1f} {100 * g / peak:10.1f}%")
    print(f"load average at end: {os.getloadavg()}")
    print("JSON " + json.dumps({"median_images_per_s": med, "flop_per_image": flop, "matmul_gflops": rates, "reps": results}))


if __name__ == "__main__":
    main()
