"""The Classifier: one nn.Module that carries everything that makes a network specific.

It takes float RGB NCHW images in [0, 1] and normalizes inside `forward`, so attacks measure eps in
pixel units and nobody normalizes twice. It knows its input size and resize/crop policy, its class
names, its named feature layers (early to late) and its penultimate embedding.
"""
from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import nn

from ..errors import CnnlabError, unknown
from ..images import Preprocessing
from ..results import Result, percent
from .labels import class_names
from .normalization import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Which class(es) a verb is about: None (each image's prediction), a class index or name, 'least-likely',
#: 'random' (a class other than the prediction), or one index/name per image (a list or tensor).
Target = Union[int, str, Sequence[Union[int, str]], torch.Tensor, None]
TARGET_WORDS = ("least-likely", "random")
_LEAST_LIKELY = ("least-likely", "least_likely", "ll")


@dataclass(frozen=True)
class Prediction:
    """One of the top-k answers for one image."""

    index: int
    label: str
    prob: float

    def to_dict(self) -> dict:
        return asdict(self)


class Predictions(Result, list):
    """The top-k predictions of a batch: one list of `Prediction` per image (a plain list otherwise),
    shown as one line per image and, in Jupyter, as bars of the probabilities."""

    def summary_rows(self) -> list[tuple[str, str]]:
        return predictions_rows([f"image {i}" for i in range(len(self))], self)

    def __repr__(self) -> str:
        if not self:
            return "Predictions([])"
        return "Predictions(" + "; ".join(f"{k}: {v}" for k, v in self.summary_rows()) + ")"

    def to_dict(self) -> list[list[dict]]:
        return [[p.to_dict() for p in top] for top in self]

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """One bar chart of the top-k probabilities per image."""
        from ..figures import bars_figure, finish
        return finish(bars_figure([(f"image {i}", [p.label for p in top], [p.prob for p in top])
                                   for i, top in enumerate(self)], xlabel="probability %"), path)


def predictions_rows(names: Sequence[str], tops: Sequence[Sequence[Prediction]], limit: int = 6
                     ) -> list[tuple[str, str]]:
    """(name, 'label 38.2%, label 21.0%, ...') for the first `limit` images (the top 3 of each)."""
    rows = [(name, ", ".join(f"{p.label.split(',')[0]} {percent(p.prob, 1)}" for p in top[:3]))
            for name, top in zip(names, tops)]
    if len(rows) > limit:
        rows = rows[:limit - 1] + [("…", f"{len(rows) - limit + 1} more images")]
    return rows


class Classifier(nn.Module):
    """A backbone wrapped so that every cnnlab verb works with it.

    Args:
        net: the network mapping normalized images to logits (anything returning a tensor, a tuple
            whose first item is the logits, or an object with `.logits`).
        labels: class names, index order.
        preprocessing: input size and resize/crop policy.
        mean, std: per-channel normalization applied inside `forward` to [0,1] inputs.
        feature_layers: names of modules in `net` (early to late) whose outputs are feature maps.
        head: name of the final linear module in `net`; its input is the penultimate embedding.
        spec: how to rebuild this model by name: {"name": ..., "kwargs": {...}}.
    """

    def __init__(self, net: nn.Module, labels: Sequence[str], *, preprocessing: Preprocessing,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 feature_layers: Sequence[str] = (), head: str | None = None,
                 spec: dict | None = None, weights_name: str | None = None) -> None:
        super().__init__()
        self.net = net
        self.labels = list(labels)
        self.preprocessing = preprocessing
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        modules = dict(net.named_modules())
        for name in [*feature_layers, *([head] if head else [])]:
            if name not in modules:
                raise ValueError(f"layer '{name}' is not a module of {type(net).__name__}")
        self._feature_layers = list(feature_layers)
        self.head_name = head
        self.spec = spec or {"name": type(net).__name__, "kwargs": {}}
        self.weights_name = weights_name
        _disable_inplace(net)
        from .fastpath import tune_allocator
        tune_allocator()  # process-wide, once: big activations reuse heap memory instead of page-faulting

    # -- what the classifier knows ---------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def device(self) -> torch.device:
        """Where the network's weights are: data meets the model here."""
        return self.mean.device

    def label(self, index: int) -> str:
        """The name of class `index` (its number as text when out of range)."""
        index = int(index)
        return self.labels[index] if 0 <= index < len(self.labels) else str(index)

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.preprocessing.input_size)

    @property
    def normalization(self) -> dict:
        return {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> "Classifier":
        """Change the normalization applied in `forward` (e.g. for weights trained with other stats)."""
        self.mean.copy_(torch.tensor(mean).view(1, -1, 1, 1))
        self.std.copy_(torch.tensor(std).view(1, -1, 1, 1))
        return self

    def layers(self) -> "OrderedDict[str, nn.Module]":
        """Named feature layers, early to late (their outputs are spatial feature maps)."""
        modules = dict(self.net.named_modules())
        return OrderedDict((n, modules[n]) for n in self._feature_layers)

    def layer(self, name: str) -> nn.Module:
        """A module by name: a feature-layer name, any module path in the net, or early/middle/late."""
        names = list(self.layers())
        if name in ("early", "middle", "late") and names:
            name = names[{"early": 0, "middle": len(names) // 2, "late": len(names) - 1}[name]]
        modules = dict(self.net.named_modules())
        if name not in modules or name == "":
            raise unknown("layer", name, names or [n for n in modules if n])
        return modules[name]

    def resolve_layer_name(self, name: str) -> str:
        """Map early/middle/late to a feature-layer name; check other names exist."""
        names = list(self.layers())
        if name in ("early", "middle", "late") and names:
            return names[{"early": 0, "middle": len(names) // 2, "late": len(names) - 1}[name]]
        self.layer(name)
        return name

    def head(self) -> nn.Module:
        """The final linear layer (its input is `features(x)`)."""
        if self.head_name is None:
            raise CnnlabError(f"Model '{self.name}' has no named classification head.")
        return dict(self.net.named_modules())[self.head_name]

    def replace_head(self, num_classes: int) -> "Classifier":
        """A fresh final linear layer with `num_classes` outputs (fine-tuning on other classes); the
        class names become 'class 0', 'class 1', ... until the data names them."""
        head = self.head()
        parent, _, attr = self.head_name.rpartition(".")
        holder = self.net.get_submodule(parent) if parent else self.net
        setattr(holder, attr, nn.Linear(head.in_features, num_classes, bias=head.bias is not None))
        self.labels = class_names(num_classes)
        self.spec = {**self.spec, "kwargs": {**self.spec.get("kwargs", {}), "num_classes": num_classes}}
        return self

    # -- housekeeping every verb needs ---------------------------------------------------------
    @contextlib.contextmanager
    def frozen(self, eval_mode: bool = True, fast: bool = False) -> Iterator["Classifier"]:
        """Eval mode (unless `eval_mode=False`) and parameters that need no gradient, both restored
        afterwards: BatchNorm and dropout stay fixed, and autograd builds only the graph to the input.

        With `fast` (attacks, attributions, feature visualization), `forward` runs the inference twin
        (BatchNorm folded into the convolutions, channels_last; see models/fastpath.py) wherever no module
        is hooked: the same logits and input gradients (the same arithmetic, summed in another order) for
        less work. Anything that hooks a module (Grad-CAM, feature maps) still sees the real modules."""
        was_training = self.training
        was_fast = self.__dict__.get("_fast_forward", False)
        flags = [(p, p.requires_grad) for p in self.parameters()]
        if eval_mode:
            self.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        object.__setattr__(self, "_fast_forward", bool(fast and eval_mode) or was_fast)
        try:
            yield self
        finally:
            object.__setattr__(self, "_fast_forward", was_fast)
            for p, flag in flags:
                p.requires_grad_(flag)
            self.train(was_training)

    def check_images(self, x: torch.Tensor, what: str = "Images") -> torch.Tensor:
        """Images as this model's float [N,3,H,W] batch in [0,1] on its device (a single [3,H,W] image
        becomes a batch of one), or one sentence saying what is wrong with them."""
        if not isinstance(x, torch.Tensor):
            raise CnnlabError(f"{what} must be a float tensor [N,3,H,W] in [0,1]; got {type(x).__name__} "
                              "(cnnlab.load_images reads files).")
        if x.dim() == 3:
            x = x[None]
        channels = self.mean.shape[1]
        if x.dim() != 4 or x.shape[1] != channels:
            raise CnnlabError(f"{what} must be [N,{channels},H,W] tensors; got shape {tuple(x.shape)}.")
        if not x.is_floating_point():
            raise CnnlabError(f"{what} must be float in [0,1]; divide uint8 pixels by 255 first.")
        if x.numel() and (bool(torch.isnan(x).any()) or x.min() < 0 or x.max() > 1):
            raise CnnlabError(f"{what} must hold values in [0,1] (cnnlab normalizes inside the model); undo any "
                              "mean/std normalization first.")
        if tuple(x.shape[-2:]) != self.input_size and min(x.shape[-2:]) < 8:
            raise CnnlabError(f"{what} of size {tuple(x.shape[-2:])} are too small for model '{self.name}' "
                              f"(input size {self.input_size}); load them with cnnlab.load_images(paths, model).")
        return x.detach().float().to(self.device)

    def targets(self, target: Target, scores: torch.Tensor, generator: torch.Generator | None = None
                ) -> torch.Tensor:
        """A target spec -> class indices [N] on the scores' device. `scores` are the model's logits or
        probabilities [N, C] for the images: None means each image's top class, 'least-likely' its
        bottom class, 'random' a uniformly drawn class other than its top one (from `generator`)."""
        n, c = scores.shape
        dev = scores.device
        if target is None:
            return scores.detach().argmax(1)
        if isinstance(target, str) and target.strip().lower() in _LEAST_LIKELY:
            return scores.detach().argmin(1)
        if isinstance(target, str) and target.strip().lower() == "random":
            if c < 2:
                raise CnnlabError("A random target needs a model with at least two classes.")
            r = torch.randint(0, c - 1, (n,), generator=generator,
                              device=generator.device if generator is not None else "cpu").to(dev)
            return r + (r >= scores.detach().argmax(1)).long()  # uniform over the classes but the top one
        if isinstance(target, torch.Tensor):
            target = target.flatten().tolist()
        if isinstance(target, (int, str)):
            return torch.full((n,), self.class_index(target), dtype=torch.long, device=dev)
        items = list(target)
        if len(items) == 1:
            items = items * n
        if len(items) != n:
            raise CnnlabError(f"{len(items)} targets were given for {n} images; give one target, or one per image.")
        return torch.tensor([self.class_index(t) for t in items], dtype=torch.long, device=dev)

    # -- computation ---------------------------------------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[0,1] RGB images -> logits [N, num_classes], on the model's device (images elsewhere are moved
        there; cnnlab's verbs move a batch once and call the model on it many times)."""
        if x.dim() != 4 or x.shape[1] != self.mean.shape[1]:
            raise CnnlabError(f"Model '{self.name}' takes images as [N, {self.mean.shape[1]}, H, W] "
                              f"tensors; got shape {tuple(x.shape)}.")
        if x.device != self.mean.device:
            x = x.to(self.mean.device)
        if self.__dict__.get("_fast_forward") and not self.training:  # inside frozen(fast=True)
            run = self._inference_fn(len(x))
            if run is not self:
                return run(x)
        out = self.net(self.normalize(x))
        return _logits(out)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate embedding [N, D]: the input of the final linear layer."""
        captured: list[torch.Tensor] = []
        handle = self.head().register_forward_pre_hook(lambda m, inp: captured.append(inp[0]))
        try:
            self.forward(x)
        finally:
            handle.remove()
        return captured[-1].flatten(1)

    @torch.inference_mode()
    def probabilities(self, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Softmax probabilities [N, C], evaluated in eval mode, batched (training mode restored).

        On the CPU and CUDA GPUs this runs an inference twin of the net (BatchNorm folded, channels_last)
        unless a module is hooked; see models/fastpath.py for why and how much faster.
        """
        if x.dim() != 4 or x.shape[1] != self.mean.shape[1]:
            self.forward(x)  # raises the one-sentence shape error
        was_training = self.training
        self.eval()
        try:
            run = self._inference_fn(len(x))
            outs = [torch.softmax(run(x[i:i + batch_size].to(self.mean.device)).float(), dim=1)
                    for i in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(outs)

    def _inference_fn(self, n: int):
        """The fastest correct way to get logits now: the cached twin on the CPU or a CUDA GPU, else `self`
        (also for a few images, where building the twin would cost more than it saves)."""
        from .fastpath import has_hooks, inference_twin, state_key, tune_allocator
        tune_allocator()
        if (self.mean.device.type not in ("cpu", "cuda") or has_hooks(self) or not getattr(self, "fast_inference", True)
                or type(self).forward is not Classifier.forward):  # a subclass's own forward must run
            return self
        key = state_key(self.net)
        if key is None:
            return self
        cached = self.__dict__.get("_twin")
        if (cached is None or cached[0] != key) and n < 16:
            return self
        if cached is None or cached[0] != key:
            with torch.inference_mode(False), torch.no_grad():  # ordinary tensors: attacks take gradients through it
                cached = (key, inference_twin(self.net))
            object.__setattr__(self, "_twin", cached)  # not a submodule: no state_dict/.to()/parameters
        twin = cached[1]
        return lambda xb: _logits(twin(self.normalize(xb).contiguous(memory_format=torch.channels_last)))

    def predict(self, x: torch.Tensor, k: int = 5, batch_size: int = 64) -> Predictions:
        """Top-k (index, label, prob) per image: a list (one list of Prediction per image) that prints
        in one line per image and shows its probabilities in Jupyter."""
        probs = self.probabilities(x, batch_size)
        broken = (~torch.isfinite(probs).all(dim=1)).nonzero().flatten()
        if len(broken):
            raise CnnlabError(f"Model '{self.name}' answered NaN (not a number) for {len(broken)} of {len(x)} "
                              "images; its weights hold NaN or infinite values (a diverged training run?): use "
                              "another checkpoint.")
        k = max(1, min(k, probs.shape[1]))
        top = probs.topk(k, dim=1)
        return Predictions([[Prediction(int(i), self.labels[int(i)], float(p)) for p, i in zip(ps, idx)]
                            for ps, idx in zip(top.values, top.indices)])

    def class_index(self, target: int | str) -> int:
        """A class given by index, by (case-insensitive) name, or by synset id -> its index."""
        if isinstance(target, bool):
            raise CnnlabError(f"Class {target!r} is not a class index or name.")
        if isinstance(target, int) or (isinstance(target, str) and target.strip().lstrip("-").isdigit()):
            i = int(target)
            if not 0 <= i < self.num_classes:
                raise CnnlabError(f"Class index {i} is out of range: model '{self.name}' has "
                                  f"{self.num_classes} classes (0..{self.num_classes - 1}).")
            return i
        want = target.strip().lower().replace("_", " ")
        for i, lab in enumerate(self.labels):
            if lab.lower().replace("_", " ") == want:
                return i
        from .imagenet import synset_index
        if self.num_classes == 1000 and (i := synset_index(target)) is not None:
            return i
        raise unknown("class", target, self.labels)

    def describe(self) -> dict:
        """A JSON-able summary: name, classes, input size, normalization, layers, parameters."""
        return {"name": self.name, "num_classes": self.num_classes, "input_size": list(self.input_size),
                "preprocessing": self.preprocessing.to_dict(), **self.normalization,
                "layers": list(self.layers()), "head": self.head_name,
                "params": sum(p.numel() for p in self.parameters()), "weights": self.weights_name}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, classes={self.num_classes}, input_size={self.input_size}"

    def checkpoint_meta(self) -> dict:
        """What a checkpoint stores besides the weights so the model can be rebuilt with no code."""
        return {"spec": json.loads(json.dumps(self.spec)), "labels": self.labels,
                "preprocessing": self.preprocessing.to_dict(), **self.normalization}


def _logits(out: Any) -> torch.Tensor:
    """Models may return tuples or output objects (GoogLeNet/Inception aux heads); keep the logits."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise CnnlabError(f"The network returned {type(out).__name__}, not logits; wrap it so it returns a tensor.")


def _disable_inplace(net: nn.Module) -> None:
    """In-place activations break forward/backward hooks (feature maps, Grad-CAM, guided backprop)."""
    for m in net.modules():
        if hasattr(m, "inplace") and isinstance(getattr(m, "inplace"), bool):
            m.inplace = False
