"""Evaluation of a classifier on a labelled dataset: loss, top-1/top-5, per-class accuracy, confusion.

Runs under torch.inference_mode in eval mode, batched; under DistributedDataParallel every rank
evaluates its slice of each batch and the counts are summed, so all ranks get the same result.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.base import Dataset
from ..data.loader import make_loader
from ..errors import CnnlabError
from .config import TTA_MODES, tta_mode

__all__ = ["EvalResult", "evaluate", "predict_labels", "tta_views", "tta_logits", "TTA_MODES", "tta_mode"]


@dataclass
class EvalResult:
    """Metrics of one evaluation. `confusion[i][j]` counts images of class i predicted as j."""

    n: int
    loss: float
    top1: float
    top5: float
    mean_class_accuracy: float
    per_class: list[dict]
    confusion: list[list[int]]
    classes: list[str]

    @property
    def error(self) -> float:
        return 1.0 - self.top1

    def to_dict(self) -> dict:
        return {**asdict(self), "error": self.error}

    def table(self) -> str:
        """The per-class accuracies as an aligned text table."""
        w = max([len(c["name"]) for c in self.per_class] + [5])
        lines = [f"{'class':<{w}}  {'n':>6}  {'accuracy':>8}"]
        lines += [f"{c['name']:<{w}}  {c['n']:>6}  {100 * c['accuracy']:>7.2f}%" for c in self.per_class]
        return "\n".join(lines)

    def confusion_figure(self, path: str | Path, title: str = "") -> Path:
        """Save the row-normalized confusion matrix as a PNG."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
        cm = np.asarray(self.confusion, dtype=float)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        k = len(self.classes)
        size = min(14, max(5, 0.45 * k + 2))
        fig, ax = plt.subplots(figsize=(size, size))
        im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        if k <= 30:
            ax.set_xticks(range(k), self.classes, rotation=60, ha="right", fontsize=8)
            ax.set_yticks(range(k), self.classes, fontsize=8)
            if k <= 15:
                for i in range(k):
                    for j in range(k):
                        if cm[i, j]:
                            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                                    color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title or f"confusion (top-1 {100 * self.top1:.2f}%, n={self.n})")
        fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


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


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


@torch.inference_mode()
def evaluate(model, data: Dataset, batch_size: int = 512, tta: bool | str = False,
             forward: Callable[[torch.Tensor], torch.Tensor] | None = None, rank: int = 0,
             world_size: int = 1, channels_last: bool = False, workers: int = 2) -> EvalResult:
    """Loss, top-1/top-5, mean per-class accuracy and confusion of `model` (a Classifier) on `data`.

    `forward` replaces the model's forward (e.g. an EMA copy of the weights); `tta` ("none", "flip"
    or True, "flip-translate"; see `tta_views`) averages the logits over augmented views of each image.
    """
    mode = tta_mode(tta)
    if len(data) == 0:
        raise CnnlabError("The evaluation data is empty.")
    if int(data.y.min()) < 0:
        raise CnnlabError(f"The data '{data.name}' is unlabelled; evaluation needs labels "
                          "(use `cnnlab predict-set` to write predictions).")
    k = model.num_classes
    if int(data.y.max()) >= k:
        raise CnnlabError(f"The data '{data.name}' has labels up to {int(data.y.max())} but model "
                          f"'{model.name}' has {k} classes.")
    fn = forward or model
    was_training = model.training
    model.eval()
    loader = make_loader(data, batch_size, size=model.input_size, shuffle=False, rank=rank,
                         world_size=world_size if batch_size % max(world_size, 1) == 0 else 1,
                         channels_last=channels_last, workers=workers)
    if loader.world_size != world_size and world_size > 1:
        rank, world_size = 0, 1
    sums = torch.zeros(3, dtype=torch.float64)  # loss, top1, top5
    confusion = torch.zeros(k, k, dtype=torch.float64)
    try:
        for x, y in loader:
            logits = tta_logits(fn, x, mode)
            sums[0] += F.cross_entropy(logits, y, reduction="sum").item()
            top = logits.topk(min(5, k), dim=1).indices
            sums[1] += (top[:, 0] == y).sum().item()
            sums[2] += (top == y[:, None]).any(1).sum().item()
            confusion += torch.bincount(y * k + top[:, 0], minlength=k * k).view(k, k).double()
    finally:
        model.train(was_training)
    if world_size > 1:
        _all_reduce(sums)
        _all_reduce(confusion)
    n = int(confusion.sum().item())
    per_n = confusion.sum(1)
    per_acc = confusion.diag() / per_n.clamp(min=1)
    present = per_n > 0
    classes = list(model.labels)
    per_class = [{"index": i, "name": classes[i], "n": int(per_n[i]), "accuracy": float(per_acc[i])}
                 for i in range(k) if per_n[i] > 0]
    return EvalResult(n=n, loss=float(sums[0] / n), top1=float(sums[1] / n), top5=float(sums[2] / n),
                      mean_class_accuracy=float(per_acc[present].mean()), per_class=per_class,
                      confusion=confusion.long().tolist(), classes=classes)


@torch.inference_mode()
def predict_labels(model, data: Dataset, batch_size: int = 512, tta: bool | str = False,
                   workers: int = 2) -> torch.Tensor:
    """Top-1 class index of every image of `data`, in input order (`tta` as in `evaluate`)."""
    mode = tta_mode(tta)
    was_training = model.training
    model.eval()
    out = []
    try:
        for x, _ in make_loader(data, batch_size, size=model.input_size, shuffle=False, workers=workers):
            logits = tta_logits(model, x, mode)
            out.append(logits.argmax(1))
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)
