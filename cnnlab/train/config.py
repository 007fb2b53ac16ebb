"""Everything that defines a training run, as one JSON-serializable dataclass (saved as config.json)."""
from __future__ import annotations

import functools
import math
import os
import types
import typing
from dataclasses import Field, asdict, dataclass, field, fields

from ..devices import PRECISIONS
from ..errors import CnnlabError, unknown

#: "muon": Muon (torch.optim.Muon) for the convolution filters, Nesterov SGD for every other parameter.
OPTIMIZERS = ("sgd", "adam", "adamw", "muon")
SCHEDULES = ("constant", "step", "multistep", "exponential", "cosine", "onecycle", "triangle", "linear")
#: Test-time augmentation modes: "flip" averages each image with its mirror; "flip-translate" also
#: averages the mirror pair shifted one pixel up-left and down-right (the unshifted pair weighs half).
TTA_MODES = ("none", "flip", "flip-translate")


def tta_mode(value: bool | str | None) -> str:
    """The canonical TTA mode for `value`: False/None -> "none", True -> "flip" (older configs), or a name."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "flip"
    name = str(value).strip().lower().replace("_", "-")
    aliases = {"": "none", "off": "none", "false": "none", "no": "none", "true": "flip", "mirror": "flip",
               "on": "flip", "flip+translate": "flip-translate"}
    name = aliases.get(name, name)
    if name not in TTA_MODES:
        raise CnnlabError(f"Test-time augmentation '{value}' is unknown; use one of {', '.join(TTA_MODES)}.")
    return name


ADV_METHODS = ("pgd", "fgsm-rs")


def _opt(default: object = None, help: str = "", *, factory: object = None, **cli: object) -> object:  # noqa: A002
    """A TrainConfig field whose metadata holds its help text, how the command line spells it (`flags`,
    `choices`, `fraction`, `bare`: the value of the option given without one, `off`: the value of its
    --no- form, `cli=False`) and the numbers it allows (`min`/`max` inclusive, `above`/`below` exclusive);
    `cnnlab train` builds its options from these, and both it and TrainConfig check values with them."""
    meta = {"help": help, **cli}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """A training run's settings. Defaults follow He et al. (2016) for CIFAR ResNets, but shorter; where
    the caller leaves an option unset, `cnnlab.train` takes it from the model family's recipe
    (`cnnlab.models.recipe(name)`)."""

    model: str = _opt("cifar_resnet20", "Registered model (see `cnnlab models`), e.g. cifar_resnet20, course_resnet, "
                      "simple_cnn_bn, airbench.")
    model_kwargs: dict = _opt(factory=dict, help="Model option, repeatable: strides=1,1,2  shortcut=false  bn=true  "
                              "widths=512,256.", flags=("--model-arg",), metavar="KEY=VALUE")
    data: str = _opt("cifar10", "cifar10, cifar100, pets, miniplaces, an .npz/.npy file (x uint8 NxHxWx3 + y) or an "
                     "image folder.")
    classes: str | None = _opt(None, "Names of the data's classes, in index order: a file (one per line, or a JSON "
                               "list) or a comma list like cat,dog [default: the data's own names: folder names, a "
                               "'classes' array; else 'class 0', 'class 1', ...].", metavar="FILE|A,B,...")
    val: str | None = _opt(None, "Validation data: 'test' (the data's held-out part) or another dataset; default: a "
                           "seeded, stratified --val-split of the training data.")
    val_split: float = _opt(0.1, "Fraction of the training data held out for validation (seeded, per class).",
                             min=0, below=1)
    data_dir: str | None = _opt(None, "Where a named dataset lives or is downloaded to (default: $CNNLAB_DATA, else "
                                "~/.cache/cnnlab/datasets).")
    limit: int | None = _opt(None, "Train on a seeded random subset of N training images (quick runs).", min=1)
    num_classes: int | None = _opt(None, "Head size (default: the data's number of classes).", min=1)
    epochs: int = _opt(30, "Epochs to train.", min=1)
    batch_size: int = _opt(128, "Images per optimizer step, over all processes.", min=1)
    optimizer: str = _opt("sgd", "Optimizer; muon: Muon for the convolution filters (momentum orthogonalized by "
                          "Newton-Schulz, filters kept at a fixed norm), Nesterov SGD for the rest.", choices=OPTIMIZERS)
    lr: float = _opt(0.1, "Peak learning rate.", above=0)
    momentum: float = _opt(0.9, "SGD momentum.", min=0, below=1)
    muon_lr: float = _opt(0.24, "Muon: peak learning rate of the convolution filters (each step moves a filter by "
                          "about this fraction of its norm).", above=0)
    muon_momentum: float = _opt(0.6, "Muon: momentum of the convolution filters (Nesterov).", min=0, below=1)
    nesterov: bool = _opt(False, "Nesterov momentum (SGD).")
    weight_decay: float = _opt(1e-4, "L2 weight decay.", flags=("--wd", "--weight-decay"), min=0)
    decay_norm_and_bias: bool = _opt(False, "Decay BatchNorm and bias parameters too (default: not).",
                                     flags=("--wd-all/--no-wd-norm-bias",))
    bias_lr_mult: float = _opt(1.0, "Learning-rate multiplier of BatchNorm and bias parameters.", min=0)
    schedule: str = _opt("cosine", "Learning-rate schedule.", choices=SCHEDULES)
    step_every: int = _opt(30, "Step schedule: multiply the lr by --gamma every T epochs (implies --schedule step).",
                            min=1)
    milestones: list[int] = _opt(factory=list, help="Multistep schedule: the epochs where the lr is multiplied by "
                                 "--gamma, e.g. 80,120 (implies --schedule multistep).", min=1)
    gamma: float = _opt(0.1, "Decay factor of the step, multistep and exponential schedules.", above=0)
    lr_end: float = _opt(0.0, "Triangle and linear schedules: the lr at the last step, as a fraction of the peak "
                         "(airbench94: 0.07).", min=0)
    warmup_epochs: float = _opt(0.0, "Linear warm-up epochs.", flags=("--warmup",), min=0)
    label_smoothing: float = _opt(0.0, "Label smoothing of the cross-entropy.", min=0, below=1)
    clip_grad: float | None = _opt(None, "Clip the gradient norm to this value.", above=0)
    ema: float | None = _opt(None, "Keep an EMA of the weights with this decay per step (e.g. 0.999); the "
                             "averaged weights are the trained model.", above=0, below=1)
    lookahead: int = _opt(0, "Every N steps pull the weights back to their running average (lookahead; the "
                          "average's decay rises as 0.95^N x progress^3) and end on the average; 0: off.", min=0)
    freeze_after: dict = _opt(factory=dict, help="Stop training a parameter after N epochs, its lr falling linearly to "
                              "0 until then; repeatable, e.g. whiten.bias=1 (airbench's whitening bias).",
                              metavar="NAME=EPOCHS", off={})
    hard_fraction: float = _opt(1.0, "Train on this fraction of each batch: the images a proxy network, trained "
                                "alongside, finds hardest (highest loss); 1: every image (airbench96's data "
                                "filtering: 0.5 with a small proxy halves the model's work).", above=0, max=1)
    proxy_args: dict = _opt(factory=dict, help="With --hard-fraction: the proxy is the model rebuilt with these "
                            "arguments, e.g. widths=32,64,64 (default: a copy of the model); repeatable.",
                            flags=("--proxy-arg",), metavar="KEY=VALUE")
    proxy_every: int = _opt(4, "With --hard-fraction: the proxy learns from every Nth batch (it scores all of "
                            "them).", min=1)
    augment: str = _opt("crop4,flip", "Batch augmentation, e.g. 'crop4,flip', 'crop2,flip,cutout8', 'crop2,altflip' "
                        "(altflip: each image mirrored in every other epoch), 'none'.")
    channels_last: bool = _opt(True, "channels_last memory format (faster on the CPU, and on GPUs with mixed "
                               "precision).")
    device: str = _opt("auto", "Where to train: auto (CUDA, else MPS, else the CPU; $CNNLAB_DEVICE overrides), cpu, "
                       "cuda, cuda:N or mps. Under torchrun each process takes the GPU of its LOCAL_RANK.")
    precision: str = _opt("auto", "Float format of the forward pass: fp32, bf16 or fp16 (mixed precision; fp16 with a "
                          "gradient scaler); auto: bf16 on GPUs that have it, fp16 on older NVIDIA GPUs, fp32 on the "
                          "CPU and MPS.", choices=PRECISIONS)
    compile: bool = _opt(False, "Compile the network with torch.compile (minutes of compiling first; helps long GPU "
                         "runs, measured slower on a small CPU).")
    seed: int = _opt(0, "Seed of the initialization, the validation split, the data order and augmentation.")
    eval_batch_size: int = _opt(512, "Images per validation batch.", min=1)
    tta: bool | str = _opt("none", "Test-time augmentation in validation: flip (image + mirror), flip-translate "
                           "(+ both shifted 1 px), none.", choices=TTA_MODES, bare="flip", off="none")
    # fine-tuning
    pretrained: bool = _opt(False, "Start from the model's published weights (fine-tuning; new head).")
    weights: str | None = _opt(None, "Start from these weights (new head if needed).")
    freeze_epochs: int = _opt(0, "Train only the new head for N epochs, then everything.", min=0)
    backbone_lr_mult: float = _opt(1.0, "Backbone lr = lr x this (fine-tuning), e.g. 0.1.", min=0)
    # hooks into other engines
    custom_conv: bool = _opt(False, "Train with cnnlab's own unfold convolution (cnnlab.reference).")
    adv: str | None = _opt(None, "Adversarial training: PGD, or FGSM from a random start.", choices=ADV_METHODS)
    eps: float = _opt(8 / 255, "Adversarial L-inf radius, e.g. 8/255.", fraction=True, min=0, max=1)
    adv_steps: int = _opt(7, "PGD steps for training and robust validation.", min=1)
    adv_step_size: float | None = _opt(None, "PGD step size (default: from eps and steps).", fraction=True,
                                        above=0, max=1)
    robust_eval_images: int = _opt(500, "Validation images attacked after each epoch (robust accuracy).", min=0)
    data_init: bool = _opt(True, "Run the model family's data-dependent initialization, if it has one (airbench: "
                           "its whitening convolution from the training images).")
    workers: int = _opt(2, "Decoding processes for image files streamed from disk.", min=0)
    checkpoint_every: int = _opt(1, "Epochs between checkpoints.", cli=False, min=1)
    log_every: int = _opt(0, "0: progress bar only; N: also print every N steps.", cli=False, min=0)

    def __post_init__(self) -> None:
        self.tta = tta_mode(self.tta)
        self.device = str(self.device or "auto")  # a torch.device from Python, saved as its name
        for f in fields(self):
            setattr(self, f.name, check_option(f, getattr(self, f.name)))
        if self.optimizer not in OPTIMIZERS:
            raise unknown("optimizer", self.optimizer, OPTIMIZERS)
        if self.schedule not in SCHEDULES:
            raise unknown("schedule", self.schedule, SCHEDULES)
        for name, n in self.freeze_after.items():
            if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) or n <= 0:
                raise CnnlabError(f"--freeze-after {name}={n}: the number of epochs must be positive, e.g. "
                                  f"{name}=1.")
        if self.adv is not None and self.adv not in ADV_METHODS:
            raise unknown("adversarial training method", self.adv, ADV_METHODS)
        bad = [k for k in self.model_kwargs if not isinstance(k, str)]
        if bad:
            raise CnnlabError(f"Model argument names must be text, not {bad[0]!r}; write them as --model-arg "
                              "NAME=VALUE.")
        self.precision = str(self.precision).strip().lower()
        if self.precision not in PRECISIONS:
            raise unknown("precision", self.precision, PRECISIONS)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        if "whiten" in d:  # configs written before families owned their initialization
            d.setdefault("data_init", d.pop("whiten"))
        names = {f.name for f in fields(cls)}
        bad = [k for k in d if k not in names]
        if bad:
            raise unknown("training option", bad[0], names)
        return cls(**d)

    def replace(self, **changes) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def option_name(f: Field) -> str:
    """How the command line spells a TrainConfig field: its first flag (--wd), else --field-name."""
    flags = f.metadata.get("flags")
    return flags[0].split("/")[0] if flags else f"--{f.name.replace('_', '-')}"


def check_option(f: Field, value: object) -> object:
    """`value` for TrainConfig field `f`, checked against the field's type and the numbers its metadata
    allows; one sentence naming the option otherwise (the same check for the command line and Python)."""
    hint = _field_types()[f.name]
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    kinds = [typing.get_origin(t) or t for t in (typing.get_args(hint) if union else (hint,)) if t is not type(None)]
    name = option_name(f)
    if value is None and (not union or len(kinds) < len(typing.get_args(hint))):
        return value
    if isinstance(value, bool) and bool in kinds or isinstance(value, str) and str in kinds:
        return value
    if isinstance(value, os.PathLike) and str in kinds:  # a data file or weights given as a Path
        return os.fspath(value)
    if int in kinds or float in kinds:
        whole = float not in kinds
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CnnlabError(f"{name} must be {'a whole number' if whole else 'a number'}, not {value!r}.")
        if not math.isfinite(value) or (whole and not float(value).is_integer()):
            raise CnnlabError(f"{name} must be {'a whole number' if whole else 'a finite number'}, not {value}.")
        _check_bounds(f, name, value)
        return int(value) if whole else float(value)
    if list in kinds:
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise CnnlabError(f"{name} must be whole numbers separated by commas, e.g. 80,120; not {value!r}.")
        for v in value:
            _check_bounds(f, name, v)
        return list(value)
    if dict in kinds and isinstance(value, dict):
        return value
    raise CnnlabError(f"{name} must be {' or '.join(k.__name__ for k in kinds)}, not {value!r}.")


def _check_bounds(f: Field, name: str, value: float) -> None:
    """One sentence when `value` is outside what field `f`'s metadata allows."""
    meta = f.metadata
    fits = (("min" not in meta or value >= meta["min"]) and ("above" not in meta or value > meta["above"])
            and ("max" not in meta or value <= meta["max"]) and ("below" not in meta or value < meta["below"]))
    if not fits:
        low = f"at least {meta['min']:g}" if "min" in meta else f"above {meta['above']:g}" if "above" in meta else ""
        high = f"at most {meta['max']:g}" if "max" in meta else f"below {meta['below']:g}" if "below" in meta else ""
        raise CnnlabError(f"{name} must be {' and '.join(w for w in (low, high) if w)}, got {value:g}.")


@functools.cache
def _field_types() -> dict:
    """TrainConfig's field types, resolved from their annotations once."""
    return typing.get_type_hints(TrainConfig)
