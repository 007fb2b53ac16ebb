"""Evaluation, attack evaluation and feature extraction of the real ResNet-20 on real CIFAR-10 images,
run alone or under torchrun (tests/test_distributed.py compares the two); rank 0 writes the results.

    python tests/sharded_job.py OUT_DIR DEVICE                     # one process
    torchrun --nproc-per-node 2 tests/sharded_job.py OUT_DIR cpu   # two processes (gloo)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import SHARED

#: 200 images in batches of 48: five batches, the last short, so the ranks get unequal shares.
BATCH = 48


def run(out: Path, device: str) -> dict:
    import cnnlab
    from cnnlab.attacks import attack_eval
    from cnnlab.data import load_dataset
    from cnnlab.devices import resolve_device
    from cnnlab.distributed import context
    from cnnlab.train import evaluate
    from cnnlab.transfer import extract_features
    dev = resolve_device(device)
    ctx = context(dev)
    torch.set_num_threads(1)
    model = cnnlab.create_model("cifar_resnet20", weights=SHARED / "weights/akamaster_cifar10_resnet20-12fca82f.th",
                                device=dev)
    data = load_dataset(str(SHARED / "cifar10_train_first200_lossless.npz"))
    ev = evaluate(model, data, batch_size=BATCH, tta="flip")
    att = attack_eval(model, data, "pgd", eps=[1 / 255, 2 / 255], steps=3, limit=120, batch_size=BATCH // 2, seed=4)
    feats = extract_features(model, data, batch_size=BATCH, cache_dir=False, workers=0)
    result = {"world_size": ctx.world_size,
              "eval": {k: v for k, v in ev.to_dict().items()},
              "attack": [{k: v for k, v in p.to_dict().items() if k not in ("seconds", "images_per_s")}
                         for p in att.points],
              "kept": feats.names, "skipped": feats.skipped}
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(result, sort_keys=True, default=str))
        np.save(out / "features.npy", feats.features.numpy())
    return result


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "cpu")
