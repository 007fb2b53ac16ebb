"""Batched inference at 224 px with EfficientNet-Lite0, images/s: cnnlab (load_images + predict, as
`cnnlab predict` does) vs a plain torchvision-transforms + DataLoader loop over the same JPEG files.

Each variant runs in its own fresh process (allocator settings are process-wide), variants
interleaved, several rounds; medians are printed. Ablations show where cnnlab's speed comes from:
  cnnlab           load_images + Classifier.predict (tuned allocator, folded-BN channels_last twin)
  cnnlab-no-twin   same, fast_inference=False (plain forward, allocator still tuned)
  cnnlab-no-malloc same, CNNLAB_TUNE_MALLOC=0 (glibc defaults) and no twin: the starting point
  torchvision      ImageFolder-style Dataset, Resize(256)+CenterCrop(224)+ToTensor+Normalize,
                   DataLoader(batch 32, 2 workers), the same network in eval mode under no_grad
                   (the network is built by cnnlab with CNNLAB_TUNE_MALLOC=0: glibc's defaults)

    .venv/bin/python benchmarks/bench_foundation_inference.py [--images 128] [--rounds 3] [--model-only]

Every variant runs with OMP_WAIT_POLICY=PASSIVE unless the caller sets it (the `cnnlab` command sets
it; on a busy machine spinning OpenMP threads cost several times over, see bench_foundation_coldstart).
With --model-only the images are decoded first and only the network is timed ('torchvision' is then
the plain eager forward of the same net under glibc's default allocator).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CNNLAB_SHARED", ROOT.parent / "shared")) / "data" / "imagenet_samples_256_even.npz"
VARIANTS = ("cnnlab", "torchvision", "cnnlab-no-twin", "cnnlab-no-malloc")


def write_images(folder: Path, n: int) -> list[Path]:
    """n real ImageNet photos (short side 256) as JPEG files, as a user would have them."""
    import numpy as np
    d = np.load(DATA)
    paths = []
    for i in range(n):
        p = folder / f"img_{i:04d}.jpg"
        p.write_bytes(d["jpeg"][d["offsets"][i]:d["offsets"][i + 1]].tobytes())
        paths.append(p)
    return paths


def run_variant(variant: str, folder: Path, batch: int, model_only: bool = False) -> dict:
    import torch
    torch.set_num_threads(2)
    paths = sorted(folder.glob("*.jpg"))
    import cnnlab
    model = cnnlab.create_model("efficientnet_lite0", pretrained=True)
    if variant == "cnnlab-no-twin" or variant == "cnnlab-no-malloc":
        model.fast_inference = False
    if model_only:  # the network alone on tensors already in memory: no decoding, no resizing
        x = cnnlab.load_images(paths, model)
        run = (lambda xb: torch.softmax(model.net.eval()(model.normalize(xb)), 1)) if variant == "torchvision" \
            else (lambda xb: model.probabilities(xb, batch_size=batch))
        with torch.inference_mode():
            run(x[:batch])
            t0 = time.perf_counter()
            preds = torch.cat([run(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])
            seconds = time.perf_counter() - t0
        return {"variant": variant, "images": len(paths), "seconds": seconds,
                "images_per_s": len(paths) / seconds, "pred_checksum": int(preds.sum())}
    warm = cnnlab.load_images(paths[:2], model)
    if variant == "torchvision":
        from torch.utils.data import DataLoader, Dataset
        from torchvision import transforms as T
        from PIL import Image
        tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                        T.Normalize([127 / 255] * 3, [128 / 255] * 3)])

        class Files(Dataset):
            def __len__(self):
                return len(paths)

            def __getitem__(self, i):
                return tf(Image.open(paths[i]).convert("RGB"))

        net = model.net.eval()
        with torch.no_grad():
            net(tf(Image.open(paths[0]).convert("RGB"))[None])
        t0 = time.perf_counter()
        preds = []
        with torch.no_grad():
            for xb in DataLoader(Files(), batch_size=batch, num_workers=2):
                preds.append(torch.softmax(net(xb), 1).argmax(1))
        seconds = time.perf_counter() - t0
    else:
        model.predict(warm, k=3)
        t0 = time.perf_counter()
        preds = []
        for i in range(0, len(paths), batch):  # what `cnnlab predict --batch-size` does
            x = cnnlab.load_images(paths[i:i + batch], model)
            preds.append(torch.tensor([top[0].index for top in model.predict(x, k=3)]))
        seconds = time.perf_counter() - t0
    preds = torch.cat(preds)
    return {"variant": variant, "images": len(paths), "seconds": seconds, "images_per_s": len(paths) / seconds,
            "pred_checksum": int(preds.sum())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--variant", default=None)
    ap.add_argument("--folder", default=None)
    ap.add_argument("--model-only", action="store_true",
                    help="time the network alone on in-memory tensors ('torchvision' = plain eager forward)")
    args = ap.parse_args()
    if args.variant:  # child process
        print(json.dumps(run_variant(args.variant, Path(args.folder), args.batch, args.model_only)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        write_images(Path(tmp), args.images)
        results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for r in range(args.rounds):
            for v in VARIANTS:
                env = dict(os.environ)
                env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the same for every variant (as `cnnlab` sets it)
                if v in ("cnnlab-no-malloc", "torchvision"):  # the plain loop gets glibc's defaults too
                    env["CNNLAB_TUNE_MALLOC"] = "0"
                out = subprocess.run([sys.executable, __file__, "--variant", v, "--folder", tmp,
                                      "--batch", str(args.batch)] + (["--model-only"] if args.model_only else []),
                                     capture_output=True, text=True, env=env)
                if out.returncode:
                    sys.exit(out.stderr)
                res = json.loads(out.stdout.strip().splitlines()[-1])
                results[v].append(res)
                print(f"round {r + 1} {v:<17} {res['images_per_s']:7.1f} images/s", flush=True)
    med = {v: statistics.median(x["images_per_s"] for x in rs) for v, rs in results.items()}
    sums = {v: {x["pred_checksum"] for x in rs} for v, rs in results.items()}
    what = "224 px tensors in memory, network only" if args.model_only else "JPEG photos -> 224 px"
    print(f"\nEfficientNet-Lite0, {args.images} {what}, batch {args.batch}, 2 threads; "
          f"median of {args.rounds} rounds (shared, noisy machine: compare ratios)")
    for v in VARIANTS:
        print(f"  {v:<17} {med[v]:7.1f} images/s   {med[v] / med['torchvision']:5.2f}x torchvision loop")
    print(f"same predictions in every variant: {len(set().union(*sums.values())) == 1}")
    print(f"uptime: {os.getloadavg()}")


if __name__ == "__main__":
    main()
