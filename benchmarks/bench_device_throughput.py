"""Throughput on a GPU, side by side in one process on the same GPU: cnnlab against a plain PyTorch AMP loop.

One line each (images/s, ratio cnnlab/plain):
  resnet20 train     ResNet-20 (CIFAR), batch 512: cnnlab.train.fit (uint8 CIFAR-10 on the GPU, crop4+flip
                     on the GPU, mixed precision by --precision auto, channels_last, cuDNN autotuning) against
                     a plain loop over the same uint8 array on the GPU (random flip per image, one random
                     translation per batch, torch.autocast, channels_last, SGD with Nesterov momentum)
  resnet20 infer     cnnlab.train.evaluate (batch 1024, precision auto) against a plain autocast
                     inference loop over the same images
  lite0 train/infer  EfficientNet-Lite0 at 224 px (CIFAR-10 images resized to 224 once), batch 256, the same
                     two comparisons
  pgd attack-eval    cnnlab.attacks.attack_eval, PGD-10 at 8/255 on 2,000 test images with the pretrained
                     ResNet-20, batch 1000 (its own images/s; early stopping on, as the command runs)
Each measurement: a warm-up pass (cuDNN autotuning, allocator), then a timed pass ended by
torch.cuda.synchronize. Real data: CIFAR-10 (../shared/data, or $CNNLAB_SHARED/data).

    python benchmarks/bench_device_throughput.py --device cuda            # about a minute on an H200
    python benchmarks/bench_device_throughput.py --device cpu --quick     # a smoke check of the code paths
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CNNLAB_SHARED", ROOT.parent / "shared")) / "data"


def _sync(device: torch.device) -> None:
    from cnnlab.devices import synchronize
    synchronize(device)


def plain_train(net: torch.nn.Module, x_u8: torch.Tensor, y: torch.Tensor, batch: int, steps: int,
                mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype | None) -> float:
    """images/s of a plain AMP training loop over a uint8 array already on the GPU (timed after 3 steps)."""
    device = x_u8.device
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    net.train()
    t0 = None
    for step in range(steps + 3):
        if step == 3:
            _sync(device)
            t0 = time.perf_counter()
        idx = torch.randint(0, len(x_u8), (batch,), device=device)
        xb = x_u8[idx].float().div_(255)
        flip = torch.rand(batch, device=device) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        dy, dx = (int(v) for v in torch.randint(-4, 5, (2,)))  # one translation per batch (a cheap baseline)
        xb = torch.roll(xb, (dy, dx), (2, 3))
        xb = ((xb - mean) / std).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(net(xb).float(), y[idx])
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    _sync(device)
    return batch * steps / (time.perf_counter() - t0)


@torch.inference_mode()
def plain_infer(net: torch.nn.Module, x_u8: torch.Tensor, batch: int, mean: torch.Tensor, std: torch.Tensor,
                dtype: torch.dtype | None, reps: int = 2) -> float:
    """images/s of a plain autocast inference loop (argmax of each batch), the best of `reps` passes."""
    device = x_u8.device
    net.eval()
    best = 0.0
    for _ in range(reps + 1):  # the first pass warms up
        _sync(device)
        t = time.perf_counter()
        for i in range(0, len(x_u8), batch):
            xb = ((x_u8[i:i + batch].float().div_(255) - mean) / std).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                net(xb).argmax(1)
        _sync(device)
        best = max(best, len(x_u8) / (time.perf_counter() - t))
    return best


def cnnlab_train(name: str, data, batch: int, steps: int, device: torch.device, augment: str, **kw) -> float:
    """images/s of cnnlab.train.fit: epoch 1 (steps steps) warms up, epoch 2 is timed."""
    import cnnlab
    from cnnlab.train import TrainConfig, fit
    torch.manual_seed(0)
    model = cnnlab.create_model(name, device=device, **kw)
    cfg = TrainConfig(model=name, epochs=2, batch_size=batch, lr=0.01, optimizer="sgd", nesterov=True,
                      weight_decay=5e-4, augment=augment, channels_last=True, schedule="constant", precision="auto")
    res = fit(model, data.subset(range(batch * steps)), None, cfg, None, progress=False)
    return res.history[-1]["images_per_s"]


def cnnlab_infer(model, data, batch: int, reps: int = 2) -> float:
    from cnnlab.train import evaluate
    best = 0.0
    for _ in range(reps + 1):
        t = time.perf_counter()
        evaluate(model, data, batch_size=batch, precision="auto")
        best = max(best, len(data) / (time.perf_counter() - t))
    return best


def compare(label: str, ours: float, plain: float) -> dict:
    line = f"{label:20s} cnnlab {ours:10,.0f} img/s   plain PyTorch AMP loop {plain:10,.0f} img/s   " \
           f"ratio {ours / plain:5.2f}"
    print(line, flush=True)
    return {"what": label, "cnnlab": ours, "plain": plain, "ratio": ours / plain, "line": line}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a check that every path runs (not a result)")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    a = ap.parse_args()
    import cnnlab
    from cnnlab.attacks import attack_eval
    from cnnlab.data import ImageArrays, load_dataset
    from cnnlab.devices import describe_device, resolve_device, resolve_precision
    device = resolve_device(a.device)
    precision = resolve_precision("auto", device)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    q = a.quick
    steps, r20_batch, lite_batch = (2, 32, 4) if q else (40, 512, 256)
    train = load_dataset(str(SHARED / "cifar10_train_jpeg.npz")).subset(range(2000 if q else 25000))
    test = load_dataset(str(SHARED / "cifar10_test.npz"))
    test = test.subset(torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:200 if q else 10000])
    print(f"# {describe_device(device)}, torch {torch.__version__}, precision {precision}", flush=True)
    rows = []
    mean = torch.tensor([0.4914, 0.4822, 0.4465], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616], device=device).view(1, 3, 1, 1)
    x_gpu, y_gpu = train.x.to(device), train.y.to(device)

    # ResNet-20 (CIFAR): training and inference
    ours = cnnlab_train("cifar_resnet20", train, r20_batch, steps, device, "crop4,flip")
    net = cnnlab.create_model("cifar_resnet20", device=device).net.to(memory_format=torch.channels_last)
    rows.append(compare("resnet20 train", ours, plain_train(net, x_gpu, y_gpu, r20_batch, steps, mean, std, dtype)))
    r20 = cnnlab.create_model("cifar_resnet20", weights=str(SHARED / "weights/akamaster_cifar10_resnet20-12fca82f.th"),
                              device=device)
    test_gpu = test.x.to(device)
    ours = cnnlab_infer(r20, test, 2 * r20_batch)
    net = r20.net
    imagenet_mean, imagenet_std = r20.mean, r20.std
    rows.append(compare("resnet20 infer", ours, plain_infer(net, test_gpu, 2 * r20_batch, imagenet_mean, imagenet_std,
                                                             dtype)))

    # EfficientNet-Lite0 at 224 px (CIFAR-10 images resized once)
    n224 = 8 * lite_batch if q else 2560
    big = F.interpolate(train.x[:n224].float(), size=(224, 224), mode="bilinear", antialias=True,
                        align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
    big = ImageArrays(big, train.y[:n224], train.classes, "cifar10-224")
    ours = cnnlab_train("efficientnet_lite0", big, lite_batch, min(steps, n224 // lite_batch), device, "flip",
                        num_classes=10)
    lite = cnnlab.create_model("efficientnet_lite0", num_classes=10, device=device)
    net = lite.net.to(memory_format=torch.channels_last)
    big_gpu, big_y = big.x.to(device), big.y.to(device)
    rows.append(compare("lite0 train", ours, plain_train(net, big_gpu, big_y, lite_batch,
                                                         min(steps, n224 // lite_batch), lite.mean, lite.std, dtype)))
    lite.eval()
    ours = cnnlab_infer(lite, big, 2 * lite_batch)
    rows.append(compare("lite0 infer", ours, plain_infer(lite.net, big_gpu, 2 * lite_batch, lite.mean, lite.std,
                                                         dtype)))

    # PGD attack evaluation on the pretrained ResNet-20
    n_att = 100 if q else 2000
    x_att, y_att = test.floats(slice(0, n_att)), test.y[:n_att]
    attack_eval(r20, (x_att[:50], y_att[:50]), "pgd", eps=8 / 255, steps=10, batch_size=50)  # warm-up
    _sync(device)
    t = time.perf_counter()
    res = attack_eval(r20, (x_att, y_att), "pgd", eps=8 / 255, steps=10, batch_size=50 if q else 1000)
    _sync(device)
    seconds = time.perf_counter() - t
    line = (f"{'pgd attack-eval':20s} cnnlab {n_att / seconds:10,.0f} img/s   PGD-10 8/255, {res.passes_per_image:.2f} "
            f"forward+backward passes per image, clean {res.top1:.1%}, robust {res.robust_top1:.1%}")
    print(line, flush=True)
    rows.append({"what": "pgd attack-eval", "cnnlab": n_att / seconds, "line": line})
    if a.json:
        Path(a.json).write_text(json.dumps({"device": describe_device(device), "torch": torch.__version__,
                                            "precision": precision, "quick": q, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
