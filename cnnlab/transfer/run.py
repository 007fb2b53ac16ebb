"""One call from a model and a dataset to probe metrics: what `cnnlab transfer` runs.

    result = run_probe("efficientnet_lite0", "pets", data_dir="~/data")
    result.probe.mean_per_class_accuracy
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..data.base import Split
from .features import FeatureSet, extract_features
from .probe import ProbeResult, linear_probe

if TYPE_CHECKING:
    from ..models.classifier import Classifier


@dataclass
class TransferResult:
    """A linear probe on one model's features of one dataset, with what the extraction did."""

    model: str
    data: str
    probe: ProbeResult
    train: FeatureSet
    test: FeatureSet
    seconds: float

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return [*self.train.skipped, *self.test.skipped]

    def to_dict(self) -> dict:
        return {"model": self.model, "data": self.data, **self.probe.to_dict(), "l2": self.train.l2,
                "skipped": len(self.skipped), "skipped_images": [{"image": n, "reason": r} for n, r in self.skipped],
                "cache": {"train": self.train.cache_status, "test": self.test.cache_status},
                "feature_seconds": round(self.train.seconds + self.test.seconds, 3),
                "probe_seconds": round(self.probe.seconds, 3), "seconds": round(self.seconds, 3)}


def run_probe(model: "Classifier | str", data: "Split | str | Path", classifier: str = "logreg", *,
              data_dir: str | Path | None = None, download: bool = False, l2: bool = True,
              cache_dir: str | Path | None | bool = None, batch_size: int = 64, workers: int | None = None,
              seed: int = 0, test_fraction: float = 0.2, C: float | None = None, progress: bool = False,
              log=None) -> TransferResult:  # noqa: ANN001
    """Extract (or read cached) penultimate features for both parts of `data` and fit a linear probe.

    `model` is a Classifier or a registry name (pretrained weights); `data` is a Split or what
    `load_transfer_data` accepts ('pets', 'miniplaces', a folder, an .npz). `log(msg)` receives notes
    such as a stale cache being rebuilt.
    """
    t0 = time.perf_counter()
    if isinstance(model, str):
        from ..models import create_model
        model = create_model(model, pretrained=True)
    if isinstance(data, Split):
        split, name = data, getattr(data.train, "name", "") or "data"
    else:
        from .data import load_transfer_data
        split, name = load_transfer_data(data, data_dir, seed=seed, test_fraction=test_fraction,
                                         download=download), str(data)
    parts = []
    for part in (split.train, split.test):
        feats = extract_features(model, part, l2=l2, batch_size=batch_size, cache_dir=cache_dir, workers=workers,
                                 progress=progress)
        if feats.cache_note and log:
            log(feats.cache_note)
        parts.append(feats)
    result = linear_probe(parts[0], parts[1], classifier, classes=split.classes, C=C, seed=seed)
    return TransferResult(model.name, name, result, parts[0], parts[1], time.perf_counter() - t0)


def finetune(model_name: str, data, epochs: int = 10, out: str | Path | None = None, *,  # noqa: ANN001
             freeze_epochs: int = 0, backbone_lr_mult: float = 0.1, val: str | None = "test", **options):  # noqa: ANN201
    """Fine-tune a pretrained model on `data` (a folder, file or dataset name) with a new head, through
    the training engine; the probe's counterpart when the backbone may change too.

    A thin call into `cnnlab.train(...)`: `freeze_epochs` trains only the new head first, then the
    whole net, with the backbone's learning rate multiplied by `backbone_lr_mult`. `val='test'`
    validates on the data's test part (the one a probe is scored on). Other options are TrainConfig
    fields (lr, optimizer, schedule, batch_size, ...). Returns the training Run.
    """
    from .. import train as train_module
    return train_module(model_name, data=data, epochs=epochs, out=out, pretrained=True, val=val,
                        freeze_epochs=freeze_epochs, backbone_lr_mult=backbone_lr_mult, **options)
