"""Evaluation of a classifier on a labelled dataset: loss, and the metrics of cnnlab.metrics (top-1/top-5,
mean class accuracy, mean average precision, per-class precision/recall/F1, confusion).

Runs under torch.inference_mode in eval mode, batched, on the model's device (optionally in mixed
precision); under torchrun every rank evaluates whole batches of its own and the scores are gathered
in batch order, so all ranks get exactly the result one process gets.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..data.base import Dataset, GivenLoader
from ..data.datasets import load_dataset
from ..data.loader import make_loader
from ..devices import autocast, resolve_precision
from ..errors import CnnlabError
from ..metrics import ClassificationMetrics, classification_metrics
from ..models import Classifier, as_classifier
from ..progress import progress as progress_of
from ..runs import atomic_write_text, write_json
from .config import TTA_MODES, tta_mode

__all__ = ["EvalResult", "evaluate", "predict_labels", "write_label_file", "tta_views", "tta_logits", "TTA_MODES",
           "tta_mode"]


@dataclass(repr=False)
class EvalResult(ClassificationMetrics):
    """The metrics of one evaluation (see cnnlab.metrics for what each means) and its mean cross-entropy."""

    loss: float = math.nan

    @property
    def error(self) -> float:
        return 1.0 - self.top1

    def to_dict(self) -> dict:
        return {"loss": self.loss, "error": self.error, **super().to_dict()}

    def summary_rows(self) -> list[tuple[str, object]]:
        rows = super().summary_rows()
        return rows[:1] + [("loss", round(self.loss, 4))] + rows[1:]

    def table(self, worst_first: bool = False, present_only: bool = True) -> str:
        """The per-class metrics (of the classes with images, unless `present_only=False`) as aligned text."""
        return super().table(worst_first, present_only)

    def save(self, directory: str | Path, **context: object) -> dict[str, Path]:
        """Write eval.json (`context`, e.g. the checkpoint and data, then the metrics) and confusion.png into
        `directory`; returns their paths."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "eval.json", {**context, **self.to_dict()})
        title = f"{context['model']} on {context['data']}" if "model" in context and "data" in context else ""
        return {"json": d / "eval.json", "confusion": self.confusion_figure(d / "confusion.png", title)}


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`x` moved by (dy, dx) pixels (|d| <= 1), the uncovered border filled by reflection."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    return padded[..., 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]


def tta_views(x: torch.Tensor, mode: bool | str = "flip") -> list[tuple[float, torch.Tensor]]:
    """The (weight, images) views test-time augmentation `mode` averages over; weights sum to 1.

    "flip": x and its mirror, 1/2 each. "flip-translate": that pair (1/4 each) plus the pair moved one
    pixel towards the bottom-right and towards the top-left with reflected borders (1/8 each).
    """
    mode = tta_mode(mode)
    if mode == "none":
        return [(1.0, x)]
    pair = [x, x.flip(3)]
    if mode == "flip":
        return [(0.5, v) for v in pair]
    shifted = [_shift(v, d, d) for d in (1, -1) for v in pair]
    return [(0.25, v) for v in pair] + [(0.125, v) for v in shifted]


def tta_logits(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: bool | str = "flip") -> torch.Tensor:
    """The weighted mean of `fn`'s float logits over the views of `x` for TTA `mode`."""
    out = None
    for weight, view in tta_views(x, mode):
        logits = fn(view).float()
        out = weight * logits if out is None else out.add_(logits, alpha=weight)
    return out


@torch.inference_mode()
def evaluate(model: Classifier | nn.Module, data: Dataset | object, batch_size: int = 512, tta: bool | str = False,
             forward: Callable[[torch.Tensor], torch.Tensor] | None = None, channels_last: bool = False,
             workers: int = 2, precision: str = "fp32", progress: bool = True) -> EvalResult:
    """Loss and metrics (top-1/top-5, mean class accuracy, mean average precision, per class, confusion)
    of `model` (a Classifier, or any nn.Module through `as_classifier`) on `data`, on the model's device:
    a dataset, a name or path (its test part), or a user's own data (see cnnlab.data.load_dataset).

    `forward` replaces the model's forward (e.g. an EMA copy of the weights); `tta` ("none", "flip"
    or True, "flip-translate"; see `tta_views`) averages the logits over augmented views of each image;
    `precision` ("fp32", "bf16", "fp16", "auto") runs the forward pass under mixed precision; `progress`
    shows progress (see cnnlab.progress). Under torchrun (a joined process group, see cnnlab.distributed)
    every process evaluates its share of the batches and every process gets the result one process gets
    (a user's DataLoader is evaluated whole by every process).
    """
    model = as_classifier(model)
    data = load_dataset(data, "test")
    mode = tta_mode(tta)
    device = model.device
    precision = resolve_precision(precision, device)
    if len(data) == 0:
        raise CnnlabError("The evaluation data is empty.")
    if data.y is not None:
        _check_eval_labels(data.y, data.name, model)
    if batch_size < 1:
        raise CnnlabError(f"--batch-size must be at least 1, got {batch_size}.")
    fn = forward or model
    ctx = distributed.current()
    shard = ctx.active and not isinstance(data, GivenLoader)  # a DataLoader's batches are its own: not split
    mine = distributed.my_batches(-(-len(data) // batch_size), ctx)
    part = data.subset(distributed.batch_items(mine, batch_size, len(data))) if shard else data
    was_training = model.training
    model.eval()
    labels, scores = [], []
    try:
        if len(part):
            loader = make_loader(part, batch_size, size=model.input_size, shuffle=False, channels_last=channels_last,
                                 workers=workers, device=device)
            # results stay on the device until the end: no wait for the GPU per batch
            for x, y in progress_of(loader, desc=f"eval {model.name}", unit="batch", enabled=progress and ctx.is_main):
                if data.y is None:  # a DataLoader's labels, batch by batch
                    _check_eval_labels(y, data.name, model)
                with autocast(device, precision):
                    scores.append(tta_logits(fn, x.to(device), mode))
                labels.append(y.to(device))
    finally:
        model.train(was_training)
    s = torch.cat(scores).cpu() if scores else torch.zeros(0, model.num_classes)
    y = torch.cat(labels).cpu() if labels else torch.zeros(0, dtype=torch.long)
    if shard:
        batches = distributed.gather_in_order(list(zip(mine, zip(s.split(batch_size), y.split(batch_size)))), ctx)
        s, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    loss = F.cross_entropy(s.double(), y, reduction="sum")
    metrics = classification_metrics(y, list(model.labels), y_pred=s.argmax(1), scores=s)
    return EvalResult(**{f.name: getattr(metrics, f.name) for f in fields(metrics)}, loss=float(loss / len(y)))


def _check_eval_labels(y: torch.Tensor, name: str, model: Classifier) -> None:
    """Evaluation needs labels, each one of the model's classes."""
    if len(y) and int(y.min()) < 0:
        raise CnnlabError(f"The data '{name}' is unlabelled; evaluation needs labels "
                          "(use `cnnlab predict-set` to write predictions).")
    if len(y) and int(y.max()) >= model.num_classes:
        raise CnnlabError(f"The data '{name}' has labels up to {int(y.max())} but model "
                          f"'{model.name}' has {model.num_classes} classes.")


@torch.inference_mode()
def predict_labels(model: Classifier | nn.Module, data: Dataset | object, batch_size: int = 512,
                   tta: bool | str = False, workers: int = 2, progress: bool = True) -> torch.Tensor:
    """Top-1 class index of every image of `data` (all of it, as `load_dataset` reads it), in input order
    (`tta` as in `evaluate`)."""
    model = as_classifier(model)
    data = load_dataset(data, "all")
    mode = tta_mode(tta)
    was_training = model.training
    model.eval()
    out = []
    loader = make_loader(data, batch_size, size=model.input_size, shuffle=False, workers=workers, device=model.device)
    try:
        for x, _ in progress_of(loader, desc=f"predict {model.name}", unit="batch", enabled=progress):
            out.append(tta_logits(model, x.to(model.device), mode).argmax(1))
    finally:
        model.train(was_training)
    skipped = getattr(loader, "skipped", {})
    if skipped:  # one label per image, in order: a hole would shift every later line
        raise CnnlabError(f"{len(skipped)} of the images could not be read (first: {next(iter(skipped.values()))}); "
                          "a label file needs every image, so fix or remove them.")
    return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.long)


@dataclass
class LabelFile:
    """A written file of predicted labels: where, how many lines, and the most frequent labels."""

    path: Path
    n: int
    most_frequent: list[tuple[str, int]]


def write_label_file(model: Classifier | nn.Module, data: Dataset, path: str | Path, *, names: bool = False,
                     tta: bool | str = False, batch_size: int = 512, force: bool = False) -> LabelFile:
    """Write the predicted class of every image of `data`, one per line in input order (class indices,
    or names with `names=True`): a file handed in for grading. An existing file is kept unless `force`."""
    path = Path(path)
    if path.exists() and not force:
        raise CnnlabError(f"'{path}' already exists; choose another --out or pass --force to replace it.")
    model = as_classifier(model)
    pred = predict_labels(model, data, batch_size=batch_size, tta=tta)
    lines = [model.labels[int(i)] if names else str(int(i)) for i in pred]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")
    counts: dict[str, int] = {}
    for line in lines:
        counts[line] = counts.get(line, 0) + 1
    return LabelFile(path, len(lines), sorted(counts.items(), key=lambda kv: -kv[1])[:3])
