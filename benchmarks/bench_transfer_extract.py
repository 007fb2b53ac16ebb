"""Feature extraction images/s at 224 px: cnnlab vs a plain torchvision-transforms + DataLoader loop.

Both read the same JPEG files from disk and produce EfficientNet-Lite0's 1280-d penultimate features.
The plain loop is what a course notebook does: ImageFolder with Resize(256) + CenterCrop(224) +
ToTensor + Normalize, a DataLoader with 2 worker processes, the head replaced by Identity, no_grad.
cnnlab: `extract_features(model, files, cache_dir=False)` (decode threads overlapping the model,
JPEG draft decoding, the BatchNorm-folded channels_last twin, a tuned allocator).

Two sets of files: the 370 real Oxford-IIIT Pets photos of ../shared/data (short side 256, so the
resize is nearly free) and the same photos upscaled to short side 500 (the original Pets size, where
decode and resize cost more). Runs alternate A/B and report medians; the 2-core machine is shared,
so compare the ratios, not the absolute numbers.

    .venv/bin/python benchmarks/bench_transfer_extract.py [--repeats 3] [--limit 370]
"""
from __future__ import annotations

import argparse
import copy
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def write_photos(d: dict, root: Path, limit: int, short_side: int | None) -> list[str]:
    paths = []
    for i in range(min(limit, len(d["label"]))):
        blob = d["jpeg"][d["offsets"][i]:d["offsets"][i + 1]].tobytes()
        f = root / str(d["classes"][d["label"][i]]) / str(d["source_name"][i])
        f.parent.mkdir(parents=True, exist_ok=True)
        if short_side is None:
            f.write_bytes(blob)
        else:
            img = Image.open(io.BytesIO(blob)).convert("RGB")
            s = short_side / min(img.size)
            img.resize((round(img.size[0] * s), round(img.size[1] * s)), Image.BICUBIC).save(f, quality=90)
        paths.append(str(f))
    return sorted(paths)


def plain_loop(model, root: Path, batch_size: int = 64) -> tuple[int, float]:
    """The course-notebook way: torchvision transforms + DataLoader(num_workers=2)."""
    import torchvision.transforms as T
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize(model.mean.flatten().tolist(), model.std.flatten().tolist())])
    net = copy.deepcopy(model.net).eval()
    net._fc = torch.nn.Identity()
    loader = DataLoader(ImageFolder(str(root), transform=tf), batch_size=batch_size, num_workers=2)
    t0 = time.perf_counter()
    n = 0
    with torch.no_grad():
        for x, _ in loader:
            net(x)
            n += len(x)
    return n, time.perf_counter() - t0


def cnnlab_loop(model, paths: list[str], batch_size: int = 64) -> tuple[int, float]:
    from cnnlab.transfer import extract_features
    t0 = time.perf_counter()
    feats = extract_features(model, paths, cache_dir=False, batch_size=batch_size)
    return len(feats), time.perf_counter() - t0


def breakdown(model, paths: list[str], n: int = 48) -> dict[str, float]:
    """Milliseconds per image, one thread, for each stage of cnnlab's path."""
    from cnnlab.images import open_image
    from cnnlab.transfer.fast import feature_function
    pre = model.preprocessing
    t0 = time.perf_counter()
    imgs = [open_image(p, draft_size=256) for p in paths[:n]]
    t1 = time.perf_counter()
    xs = torch.stack([pre.apply(im) for im in imgs])
    t2 = time.perf_counter()
    fn, _ = feature_function(model)
    with torch.inference_mode():
        fn(xs[:8])
        t3 = time.perf_counter()
        fn(xs)
        t4 = time.perf_counter()
        model.features(xs[:8])
        t5 = time.perf_counter()
        model.features(xs)
        t6 = time.perf_counter()
    return {"decode": 1000 * (t1 - t0) / n, "resize+crop+to_tensor": 1000 * (t2 - t1) / n,
            "model (cnnlab twin)": 1000 * (t4 - t3) / n, "model (plain eager)": 1000 * (t6 - t5) / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=370)
    args = ap.parse_args()
    torch.set_num_threads(2)
    import cnnlab
    model = cnnlab.create_model("efficientnet_lite0", pretrained=True)
    d = dict(np.load(SHARED / "oxford_pets_subset.npz"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; machine shared with other engineers "
          "(noisy): compare ratios", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for label, short in (("Pets photos as stored (short side 256)", None),
                             ("Pets photos upscaled to short side 500 (original Pets size)", 500)):
            root = Path(tmp) / (label[:4] + str(short))
            paths = write_photos(d, root, args.limit, short)
            print(f"\n## {label}: {len(paths)} JPEG files", flush=True)
            plain, ours = [], []
            n, t = plain_loop(model, root)  # first, before cnnlab tunes the process's allocator
            print(f"  plain loop (untuned allocator): {n / t:6.1f} img/s", flush=True)
            for r in range(args.repeats):
                n, t = cnnlab_loop(model, paths)
                ours.append(n / t)
                n2, t2 = plain_loop(model, root)
                plain.append(n2 / t2)
                print(f"  round {r + 1}: cnnlab {ours[-1]:6.1f} img/s   plain {plain[-1]:6.1f} img/s", flush=True)
            mo, mp = statistics.median(ours), statistics.median(plain)
            print(f"  median: cnnlab {mo:.1f} img/s, plain {mp:.1f} img/s, ratio {mo / mp:.2f}x", flush=True)
            parts = breakdown(model, paths)
            total = sum(v for k, v in parts.items() if k != "model (plain eager)")
            print("  where the time goes (ms/image, one decode thread, model on 2 threads): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
                  + f"; decode+resize share of cnnlab's serial time {100 * (total - parts['model (cnnlab twin)']) / total:.0f}%",
                  flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
