"""Evaluation of a classifier on a labelled dataset: loss, and the metrics of cnnlab.metrics (top-1/top-5,
mean class accuracy, mean average precision, per-class precision/recall/F1, confusion).

Runs under torch.inference_mode in eval mode, batched, on the model's device (optionally in mixed
precision); under torchrun every rank evaluates whole batches of its own and the scores are gathered
in batch order, so all ranks get exactly the result one process gets.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
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
from ..runs import Run, atomic_write_text, load_trained_model, write_json
from .config import TTA_MODES, tta_mode

__all__ = ["EvalResult", "evaluate", "evaluate_checkpoint", "OVERLAP_POLICIES", "predict_labels", "write_label_file", "tta_views", "tta_logits", "TTA_MODES",
           "tta_mode"]


@dataclass(repr=False)
class EvalResult(ClassificationMetrics):
    """The metrics of one evaluation (see cnnlab.metrics for what each means) and its mean cross-entropy;
    `context` says what was evaluated (checkpoint, data, images, overlap with the training images)."""

    loss: float = math.nan
    context: dict = field(default_factory=dict)

    @property
    def error(self) -> float:
        return 1.0 - self.top1

    def to_dict(self) -> dict:
        return {**self.context, "loss": self.loss, "error": self.error, **super().to_dict()}

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
        context = {**self.context, **context}
        data = context.get("data")
        data = data.get("name") if isinstance(data, dict) else data
        title = f"{context['model']} on {data}" if "model" in context and data else ""
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


#: What `evaluate_checkpoint` does when evaluation images were training images of the run.
OVERLAP_POLICIES = ("refuse", "exclude", "allow")


def _overlap(data: Dataset, hashes: np.ndarray, run: Run | None, policy: str, split: str, why: str | None = None
             ) -> tuple[Dataset, np.ndarray, dict]:
    """The images to evaluate and the record of how many of them the run trained (and validated) on."""
    from ..data.fingerprint import shared_images
    trained = run.image_hashes() if run is not None else None
    if trained is None or "train" not in trained:
        why = why or ("the checkpoint is not inside a run directory" if run is None else
               f"run '{run.path}' has no record of its training images (images.npz)")
        return data, hashes, {"overlap_with_training": None,
                              "overlap_note": f"not checked: {why}, so its training images are unknown"}
    shared = shared_images(hashes, trained["train"])
    in_val = int(shared_images(hashes, trained["val"]).sum()) if "val" in trained else 0
    k, n = int(shared.sum()), len(hashes)
    record = {"images": k, "of": n, "policy": policy, "validation_images": in_val}
    if k and policy == "refuse":
        raise CnnlabError(f"{k} of the {n} evaluation images ('{data.name}', split {split}) are training images of "
                          f"run '{run.path}', so their accuracy would be training accuracy; evaluate held-out "
                          f"images (another --split or --data), or pass --overlap exclude (evaluate the other "
                          f"{n - k}) or --overlap allow (all, marked in eval.json).")
    if k and policy == "exclude":
        keep = np.flatnonzero(~shared)
        if len(keep) == 0:
            raise CnnlabError(f"All {n} evaluation images ('{data.name}', split {split}) are training images of run "
                              f"'{run.path}'; nothing is left to evaluate: pass held-out data.")
        data, hashes = data.subset(keep), hashes[keep]
        record["excluded"] = k
    return data, hashes, {"overlap_with_training": record}


def checkpoint_record(path: str | Path) -> dict:
    """Which checkpoint an evaluation used: its file, the run it belongs to, its epoch, and the first 16
    hex digits of its SHA-256 (so a later file under the same name is told apart)."""
    import hashlib
    from ..models.weights import read_checkpoint
    path = Path(path).resolve()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    ckpt = read_checkpoint(path)
    run = Run.of_checkpoint(path)
    return {"path": str(path), "run": str(run.path) if run is not None else None,
            "epoch": ckpt.get("epoch") if isinstance(ckpt, dict) else None, "sha256": digest.hexdigest()[:16]}


def evaluate_checkpoint(checkpoint: str | Path | None, data: str | Path | Dataset | object, split: str = "test", *,
                        model: Classifier | None = None, model_source: str | None = None,
                        data_dir: str | Path | None = None, overlap: str = "refuse", which: str = "best",
                        classes: Sequence[str] | str | None = None, batch_size: int = 256,
                        tta: bool | str = "none", progress: bool = True, device: str | None = "auto",
                        precision: str = "fp32", workers: int = 2, **model_args: object) -> EvalResult:
    """`evaluate` a run directory's `which` checkpoint (or a checkpoint file) on one part of `data`,
    never silently on the run's own training images. With `checkpoint` None, `model` is evaluated (one
    from the model options, e.g. a published checkpoint `model_source`): it has no run to compare with.

    Every image evaluated is compared with the images the run trained on (its images.npz): when some
    are the same, `overlap` says what happens: "refuse" (an error naming how many), "exclude" (evaluate
    the others) or "allow" (evaluate all; the result says so). The result's `context` records the
    checkpoint (file, epoch, hash), the data (source, part, size, fingerprint) and that overlap.
    `classes` renames the classes (a list, a comma list or a file); `device`, `precision` and `workers` are
    those of `evaluate`; `model_args` go to `create_model` (for a plain state dict with `name=`).
    """
    from ..data import load_dataset
    from ..data.fingerprint import describe_images, image_hashes
    from ..models.labels import read_class_names
    if overlap not in OVERLAP_POLICIES:
        raise CnnlabError(f"--overlap '{overlap}' is unknown; use one of {', '.join(OVERLAP_POLICIES)}.")
    if checkpoint is None:
        if model is None:
            raise CnnlabError("Name the model to evaluate: a checkpoint or run directory, or a model.")
        run, file = None, None
    else:
        path = Path(checkpoint)
        run = Run.open(path) if path.is_dir() else Run.of_checkpoint(path)
        file = run.checkpoint(which) if path.is_dir() else path
        model = load_trained_model(file, device=device, **model_args)
    names = read_class_names(classes, model.num_classes, "--classes")
    if names is not None:
        model.labels = names
    dataset = load_dataset(data, split, data_dir)
    spec = str(data) if isinstance(data, (str, Path)) else dataset.name
    if isinstance(dataset, GivenLoader):  # read batch by batch: its images are not compared
        described: dict = {"name": dataset.name, "source": None, "part": None, "n": len(dataset), "fingerprint": None}
        record: dict = {"overlap_with_training": None,
                        "overlap_note": "not checked: a DataLoader is used as given, batch by batch"}
    else:
        _check_eval_labels(torch.as_tensor(dataset.y), dataset.name, model)  # before comparing images
        hashes = image_hashes(dataset)
        dataset, hashes, record = _overlap(dataset, hashes, run, overlap, split,
                                           None if checkpoint is not None else "the model was given directly")
        described = describe_images(dataset, hashes)
    res = evaluate(model, dataset, batch_size=batch_size, tta=tta, progress=progress, precision=precision,
                   workers=workers)
    where = checkpoint_record(file) if file is not None else {
        "path": model_source, "run": None, "epoch": None,
        "sha256": checkpoint_record(model_source)["sha256"] if model_source and Path(model_source).is_file() else None}
    res.context = {"checkpoint": where, "model": model.name, "data": {**described, "spec": spec, "split": split},
                   "tta": tta_mode(tta), **record}
    return res


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
