"""One call from a model and a dataset to probe metrics: what `cnnlab transfer` runs.

    result = run_probe("efficientnet_lite0", "pets", data_dir="~/data")
    result.probe.mean_class_accuracy
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from ..data import Dataset, GivenLoader, Split, check_labels, load_dataset, open_dataset
from ..data.given import arrays, is_user_data
from ..models import Classifier, as_classifier, create_model
from ..results import Result
from ..runs import Run, write_json
from .features import FeatureSet, extract_features
from .probe import ProbeResult, linear_probe

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(repr=False)
class TransferResult(Result):
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

    def summary_rows(self) -> list[tuple[str, object]]:
        return [("model", self.model), ("data", self.data), *self.probe.summary_rows(),
                ("skipped", len(self.skipped)), ("seconds", round(self.seconds, 1))]

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """The probe's confusion matrix."""
        return self.probe.figure(path)

    def save(self, directory: str | Path) -> dict[str, Path]:
        """Write result.json and confusion.png into `directory`; returns their paths."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "result.json", self.to_dict())
        return {"json": d / "result.json", "confusion": self.probe.figure(d / "confusion.png")}


def probe_split(data: Split | str | Path | object, *, data_dir: str | Path | None = None,
                download: bool | None = None, seed: int = 0, test_fraction: float = 0.2) -> Split:
    """The (train, test) parts a probe uses: the source's own parts (see cnnlab.data.open_dataset), or,
    for a source that holds nothing out, a seeded, stratified `test_fraction` of each class. Photos stay
    encoded until extraction decodes them at the model's input size.

    `data` may also be a user's own data (a torch Dataset or DataLoader, (x, y) tensors or arrays; read
    into memory once) or a pair (train data, test data) of those."""
    if isinstance(data, tuple) and len(data) == 2 and not is_user_data(data):
        train, test = (_in_memory(load_dataset(part, "all")) for part in data)
        longer = max(train.classes, test.classes, key=len)  # unnamed classes: as many as either part has
        if longer[:min(len(train.classes), len(test.classes))] == min(train.classes, test.classes, key=len):
            train.classes = test.classes = list(longer)
        split = Split(train, test)
    elif isinstance(data, Split):
        split = data
    else:
        split = open_dataset(data, data_dir=data_dir, download=download, seed=seed, test_fraction=test_fraction,
                             decode=False)
        split = Split(_in_memory(split.train), split.test, split.whole)
    split = split.holdout(test_fraction, seed)
    for what, part in (("training data", split.train), ("test data", split.test)):
        check_labels(part, len(split.classes), what)
    return split


def _in_memory(data: Dataset) -> Dataset:
    """A DataLoader's images read into memory (a probe splits and caches them); other datasets as they are."""
    if isinstance(data, GivenLoader):
        x, y = data.tensors()
        return arrays(x, y, data.name, data.classes)
    return data


def run_probe(model: Classifier | nn.Module | str, data: Split | str | Path | object, classifier: str = "logreg", *,
              data_dir: str | Path | None = None, download: bool | None = None, l2: bool = True,
              cache_dir: str | Path | None | bool = None, batch_size: int = 64, workers: int | None = None,
              seed: int = 0, test_fraction: float = 0.2, C: float | None = None, progress: bool = True,
              log: Callable[[str], None] | None = None) -> TransferResult:
    """Extract (or read cached) penultimate features for both parts of `data` and fit a linear probe.

    `model` is a Classifier, any nn.Module (wrapped by `as_classifier`) or a registry name
    (pretrained weights); `data` is a Split or a source `probe_split` resolves ('pets', 'miniplaces',
    a folder, an .npz/.npy file, 'cifar10'). `log(msg)` receives notes such as a stale cache being
    rebuilt.
    """
    t0 = time.perf_counter()
    model = create_model(model, pretrained=True) if isinstance(model, str) else as_classifier(model)
    split = probe_split(data, data_dir=data_dir, download=download, seed=seed, test_fraction=test_fraction)
    name = (split.name or "data") if isinstance(data, Split) else str(data)
    parts = []
    for part in (split.train, split.test):
        feats = extract_features(model, part, l2=l2, batch_size=batch_size, cache_dir=cache_dir, workers=workers,
                                 progress=progress)
        if feats.cache_note and log:
            log(feats.cache_note)
        parts.append(feats)
    result = linear_probe(parts[0], parts[1], classifier, classes=split.classes, C=C, seed=seed)
    return TransferResult(model.name, name, result, parts[0], parts[1], time.perf_counter() - t0)


def finetune(model_name: str, data: str | Path | Dataset, epochs: int = 10, out: str | Path | None = None, *,
             freeze_epochs: int = 0, backbone_lr_mult: float = 0.1, val: str | None = "test", **options) -> Run:
    """Fine-tune a pretrained model on `data` (a folder, file or dataset name) with a new head, through
    the training engine; the probe's counterpart when the backbone may change too.

    A thin call into `cnnlab.train(...)`: `freeze_epochs` trains only the new head first, then the
    whole net, with the backbone's learning rate multiplied by `backbone_lr_mult`. `val='test'`
    validates on the data's test part (the one a probe is scored on). Other options are TrainConfig
    fields (lr, optimizer, schedule, batch_size, ...). Returns the training Run.
    """
    from ..train import train as train_module
    return train_module(model_name, data=data, epochs=epochs, out=out, pretrained=True, val=val,
                        freeze_epochs=freeze_epochs, backbone_lr_mult=backbone_lr_mult, **options)
