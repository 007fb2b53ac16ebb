"""Everything that defines a training run, as one JSON-serializable dataclass (saved as config.json)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..errors import CnnlabError, unknown

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "multistep", "exponential", "cosine", "onecycle", "triangle")
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


@dataclass
class TrainConfig:
    """A training run's settings. Defaults follow He et al. (2016) for CIFAR ResNets, but shorter; where
    the caller leaves an option unset, `cnnlab.train` takes it from the model family's recipe
    (`cnnlab.models.recipe(name)`)."""

    model: str = "cifar_resnet20"
    model_kwargs: dict = field(default_factory=dict)
    data: str = "cifar10"
    val: str | None = None            # another dataset, 'test', or None for a seeded split
    val_split: float = 0.1
    data_dir: str | None = None
    limit: int | None = None           # use only the first N (shuffled, seeded) training images
    num_classes: int | None = None
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    decay_norm_and_bias: bool = False  # False: no weight decay on BatchNorm and bias parameters
    bias_lr_mult: float = 1.0
    schedule: str = "cosine"
    step_every: int = 30               # step schedule: x gamma every T epochs
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    clip_grad: float | None = None
    ema: float | None = None           # EMA decay per step, e.g. 0.999
    augment: str = "crop4,flip"
    channels_last: bool = True
    seed: int = 0
    eval_batch_size: int = 512
    tta: bool | str = "none"           # test-time augmentation in validation: none, flip, flip-translate
    # fine-tuning
    pretrained: bool = False
    weights: str | None = None
    freeze_epochs: int = 0             # train only the new head for this many epochs
    backbone_lr_mult: float = 1.0
    # hooks into other engines
    custom_conv: bool = False          # cnnlab.reference.convert_to_unfold
    adv: str | None = None             # 'pgd' or 'fgsm-rs': adversarial training
    eps: float = 8 / 255
    adv_steps: int = 7
    adv_step_size: float | None = None
    robust_eval_images: int = 500
    data_init: bool = True             # run the model family's data-dependent initialization, if it has one
    workers: int = 2                   # decoding processes for image folders streamed from disk
    checkpoint_every: int = 1
    log_every: int = 0                 # 0: progress bar only; N: also print every N steps

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
        if self.adv is not None and self.adv not in ("pgd", "fgsm-rs"):
            raise unknown("adversarial training method", self.adv, ("pgd", "fgsm-rs"))

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
