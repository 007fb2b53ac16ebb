"""cnnlab feature extraction with 0, 1, 2 and 4 decoding threads (EfficientNet-Lite0, 224 px, real Pets
photos upscaled to short side 500 so decode + resize cost what they do on the original dataset).
Rounds alternate the settings; medians printed. The machine is shared (noisy): compare ratios.

    .venv/bin/python benchmarks/bench_transfer_workers.py [--limit 192] [--repeats 2]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_transfer_extract import SHARED, write_photos


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(2)
    import cnnlab
    from cnnlab.transfer import extract_features
    model = cnnlab.create_model("efficientnet_lite0", pretrained=True)
    d = dict(np.load(SHARED / "oxford_pets_subset.npz"))
    settings = (0, 1, 2, 4)
    rates: dict[int, list[float]] = {w: [] for w in settings}
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_photos(d, Path(tmp), args.limit, 500)
        extract_features(model, paths[:16], cache_dir=False)  # warm up (twin, allocator)
        for r in range(args.repeats):
            for w in settings:
                t = time.perf_counter()
                extract_features(model, paths, cache_dir=False, workers=w)
                rates[w].append(len(paths) / (time.perf_counter() - t))
            print(f"round {r + 1}: " + ", ".join(f"{w} threads {rates[w][-1]:.1f} img/s" for w in settings), flush=True)
    base = statistics.median(rates[0])
    print("median: " + ", ".join(f"{w} threads {statistics.median(rates[w]):.1f} img/s "
                                 f"({statistics.median(rates[w]) / base:.2f}x)" for w in settings))


if __name__ == "__main__":
    main()
