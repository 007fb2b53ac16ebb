"""Everything that defines a training run, as one JSON-serializable dataclass (saved as config.json)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

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
    """A TrainConfig field whose metadata holds its help text and how the command line spells it
    (`flags`, `choices`, `fraction`, `bare`: the value of the option given without one, `off`: the
    value of its --no- form, `cli=False`); `cnnlab train` builds its options from these."""
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
    val: str | None = _opt(None, "Validation data: 'test' (the data's held-out part) or another dataset; default: a "
                           "seeded, stratified --val-split of the training data.")
    val_split: float = _opt(0.1, "Fraction of the training data held out for validation (seeded, per class).")
    data_dir: str | None = _opt(None, "Where a named dataset lives or is downloaded to (default: $CNNLAB_DATA, else "
                                "~/.cache/cnnlab/datasets).")
    limit: int | None = _opt(None, "Train on a seeded random subset of N training images (quick runs).")
    num_classes: int | None = _opt(None, "Head size (default: the data's number of classes).")
    epochs: int = _opt(30, "Epochs to train.")
    batch_size: int = _opt(128, "Images per optimizer step, over all processes.")
    optimizer: str = _opt("sgd", "Optimizer; muon: Muon for the convolution filters (momentum orthogonalized by "
                          "Newton-Schulz, filters kept at a fixed norm), Nesterov SGD for the rest.", choices=OPTIMIZERS)
    lr: float = _opt(0.1, "Peak learning rate.")
    momentum: float = _opt(0.9, "SGD momentum.")
    muon_lr: float = _opt(0.24, "Muon: peak learning rate of the convolution filters (each step moves a filter by "
                          "about this fraction of its norm).")
    muon_momentum: float = _opt(0.6, "Muon: momentum of the convolution filters (Nesterov).")
    nesterov: bool = _opt(False, "Nesterov momentum (SGD).")
    weight_decay: float = _opt(1e-4, "L2 weight decay.", flags=("--wd", "--weight-decay"))
    decay_norm_and_bias: bool = _opt(False, "Decay BatchNorm and bias parameters too (default: not).",
                                     flags=("--wd-all/--no-wd-norm-bias",))
    bias_lr_mult: float = _opt(1.0, "Learning-rate multiplier of BatchNorm and bias parameters.")
    schedule: str = _opt("cosine", "Learning-rate schedule.", choices=SCHEDULES)
    step_every: int = _opt(30, "Step schedule: multiply the lr by --gamma every T epochs (implies --schedule step).")
    milestones: list[int] = _opt(factory=list, help="Multistep schedule: the epochs where the lr is multiplied by "
                                 "--gamma, e.g. 80,120 (implies --schedule multistep).")
    gamma: float = _opt(0.1, "Decay factor of the step, multistep and exponential schedules.")
    lr_end: float = _opt(0.0, "Triangle and linear schedules: the lr at the last step, as a fraction of the peak "
                         "(airbench94: 0.07).")
    warmup_epochs: float = _opt(0.0, "Linear warm-up epochs.", flags=("--warmup",))
    label_smoothing: float = _opt(0.0, "Label smoothing of the cross-entropy.")
    clip_grad: float | None = _opt(None, "Clip the gradient norm to this value.")
    ema: float | None = _opt(None, "Keep an EMA of the weights with this decay per step (e.g. 0.999); the "
                             "averaged weights are the trained model.")
    lookahead: int = _opt(0, "Every N steps pull the weights back to their running average (lookahead; the "
                          "average's decay rises as 0.95^N x progress^3) and end on the average; 0: off.")
    freeze_after: dict = _opt(factory=dict, help="Stop training a parameter after N epochs, its lr falling linearly to "
                              "0 until then; repeatable, e.g. whiten.bias=1 (airbench's whitening bias).",
                              metavar="NAME=EPOCHS")
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
    eval_batch_size: int = _opt(512, "Images per validation batch.")
    tta: bool | str = _opt("none", "Test-time augmentation in validation: flip (image + mirror), flip-translate "
                           "(+ both shifted 1 px), none.", choices=TTA_MODES, bare="flip", off="none")
    # fine-tuning
    pretrained: bool = _opt(False, "Start from the model's published weights (fine-tuning; new head).")
    weights: str | None = _opt(None, "Start from these weights (new head if needed).")
    freeze_epochs: int = _opt(0, "Train only the new head for N epochs, then everything.")
    backbone_lr_mult: float = _opt(1.0, "Backbone lr = lr x this (fine-tuning), e.g. 0.1.")
    # hooks into other engines
    custom_conv: bool = _opt(False, "Train with cnnlab's own unfold convolution (cnnlab.reference).")
    adv: str | None = _opt(None, "Adversarial training: PGD, or FGSM from a random start.", choices=ADV_METHODS)
    eps: float = _opt(8 / 255, "Adversarial L-inf radius, e.g. 8/255.", fraction=True)
    adv_steps: int = _opt(7, "PGD steps for training and robust validation.")
    adv_step_size: float | None = _opt(None, "PGD step size (default: from eps and steps).", fraction=True)
    robust_eval_images: int = _opt(500, "Validation images attacked after each epoch (robust accuracy).")
    data_init: bool = _opt(True, "Run the model family's data-dependent initialization, if it has one (airbench: "
                           "its whitening convolution from the training images).")
    workers: int = _opt(2, "Decoding processes for image files streamed from disk.")
    checkpoint_every: int = _opt(1, "Epochs between checkpoints.", cli=False)
    log_every: int = _opt(0, "0: progress bar only; N: also print every N steps.", cli=False)

    def __post_init__(self) -> None:
        self.tta = tta_mode(self.tta)
        if self.optimizer not in OPTIMIZERS:
            raise unknown("optimizer", self.optimizer, OPTIMIZERS)
        if self.schedule not in SCHEDULES:
            raise unknown("schedule", self.schedule, SCHEDULES)
        if self.epochs < 1:
            raise CnnlabError(f"--epochs must be at least 1, got {self.epochs}.")
        if self.lr <= 0:
            raise CnnlabError(f"--lr must be positive, got {self.lr}.")
        if not 0 <= self.label_smoothing < 1:
            raise CnnlabError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}.")
        if self.ema is not None and not 0 < self.ema < 1:
            raise CnnlabError(f"--ema decay must be in (0, 1), e.g. 0.999; got {self.ema}.")
        if self.lookahead < 0:
            raise CnnlabError(f"--lookahead must be a number of steps (0: off), got {self.lookahead}.")
        for name, n in self.freeze_after.items():
            if isinstance(n, bool) or not isinstance(n, (int, float)) or n <= 0:
                raise CnnlabError(f"--freeze-after {name}={n}: the number of epochs must be positive, e.g. "
                                  f"{name}=1.")
        if self.adv is not None and self.adv not in ADV_METHODS:
            raise unknown("adversarial training method", self.adv, ADV_METHODS)
        self.device = str(self.device or "auto")  # a torch.device from Python, saved as its name
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
