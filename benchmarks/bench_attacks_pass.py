"""One forward + input-gradient pass, the unit of every gradient attack: its cost per image by chunk size,
and the inference twin (BatchNorm folded, channels_last) against the real network, side by side.

  --sweep   images per pass (chunk sizes), the twin, median ms per image over --reps alternating rounds
  --ab      the real network (eval, frozen, channels_last input) vs the twin, both in chunks, --reps
            rounds alternating their order; prints medians and the median of the paired ratios

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_attacks_pass.py --model resnet20 --sweep 16,32,48,64,128,256
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_attacks_pass.py --model lite0 --sweep 1,2,4,8,16 --n 16
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_attacks_pass.py --model resnet20 --ab --reps 15
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_attacks_pass.py --model lite0 --ab --n 8 --reps 9
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

SHARED = Path(os.environ.get("CNNLAB_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["resnet20", "lite0"], default="resnet20")
    ap.add_argument("--sweep", default=None, help="comma-separated chunk sizes")
    ap.add_argument("--ab", action="store_true")
    ap.add_argument("--n", type=int, default=None, help="images (default 256 at 32 px, 8 at 224 px)")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(2)
    import cnnlab
    from cnnlab.models.fastpath import chunk_size, inference_twin
    if a.model == "resnet20":
        m = cnnlab.create_model("cifar_resnet20", weights=SHARED / "weights/akamaster_cifar10_resnet20-12fca82f.th")
    else:
        m = cnnlab.create_model("efficientnet_lite0", pretrained=True)
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    hw = m.input_size[0]
    n = a.n or (256 if hw <= 64 else 8)
    x = torch.rand(n, 3, hw, hw, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, m.num_classes, (n,), generator=torch.Generator().manual_seed(1))
    twin = inference_twin(m.net)
    real = lambda xx: m(xx.contiguous(memory_format=torch.channels_last))  # noqa: E731
    folded = lambda xx: twin(m.normalize(xx).contiguous(memory_format=torch.channels_last))  # noqa: E731

    def run(f, chunk: int) -> float:
        t = time.perf_counter()
        for i in range(0, n, chunk):
            xx = x[i:i + chunk].clone().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(f(xx), y[i:i + chunk]), xx)
        return time.perf_counter() - t

    print(f"# {a.model}, {n} images of {hw} px, 2 threads; chunk_size() picks {chunk_size(x)}; "
          f"load average {os.getloadavg()}")
    if a.sweep:
        sizes = [int(s) for s in a.sweep.split(",")]
        times: dict[int, list[float]] = {c: [] for c in sizes}
        for c in sizes:
            run(folded, c)
        for _ in range(a.reps):
            for c in sizes:
                times[c].append(run(folded, c))
        for c in sizes:
            print(f"chunk {c:4d}: median {statistics.median(times[c]) / n * 1e3:7.2f} ms/image "
                  f"(min {min(times[c]) / n * 1e3:.2f})")
    if a.ab:
        c = chunk_size(x)
        variants = {"real network, channels_last input": real, "twin (BN folded)": folded}
        times2: dict[str, list[float]] = {k: [] for k in variants}
        for f in variants.values():
            run(f, c)
        for r in range(a.reps):
            for k in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
                times2[k].append(run(variants[k], c))
        base = times2["real network, channels_last input"]
        for k, ts in times2.items():
            ratio = statistics.median([b / t for b, t in zip(base, ts)])
            print(f"{k:36s} median {statistics.median(ts) / n * 1e3:.2f} ms/image (min {min(ts) / n * 1e3:.2f}); "
                  f"paired speed-up {ratio:.3f}x")
    print(f"# load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
