"""What the commands share: the options that choose a model (declared once, here), number types,
and printing.

A command that runs a network takes the model options with `@model_options` and receives them as one
`model_choice: ModelChoice`; `model_choice.load()` builds the model. A new way to choose or place the
model is one more option in `MODEL_OPTIONS` and one more field of `ModelChoice`, and every such
command has it.
"""
from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import CnnlabError
from ..parsing import parse_fraction
from ..runs import fresh_out_dir, json_text  # noqa: F401  (fresh_out_dir: re-exported for the commands)

if TYPE_CHECKING:
    import torch

    from ..distributed import DistContext
    from ..models import Classifier

DEFAULT_MODEL = "efficientnet_lite0"


def model_name_option(default: str | None = None, help_text: str | None = None) -> Callable:
    """--model NAME (a registered model; `default` when not given)."""
    return click.option("--model", "model_name", default=default, show_default=default is not None,
                        help=help_text or f"Registered model name (see `cnnlab models`; default {DEFAULT_MODEL}).")


def weights_option(help_text: str | None = None) -> Callable:
    """--weights FILE (read without unpickling code)."""
    return click.option("--weights", type=click.Path(dir_okay=False), default=None,
                        help=help_text or "Weights file: a cnnlab checkpoint, a state dict or .safetensors "
                                     "(never unpickled).")


class KeyValueParam(click.ParamType):
    """KEY=VALUE -> {key: value}, the value read as a bool (true/false), an int, a float or text."""

    name = "KEY=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dict:
        if isinstance(value, dict):
            return value
        if "=" not in value:
            self.fail(f"'{value}' must look like key=value (e.g. bn=true, strides=3-3-3).", param, ctx)
        k, v = (part.strip() for part in value.split("=", 1))
        low = v.lower()
        if low in ("true", "yes", "on", "false", "no", "off"):
            return {k.replace("-", "_"): low in ("true", "yes", "on")}
        for kind in (int, float):
            try:
                return {k.replace("-", "_"): kind(v)}
            except ValueError:
                pass
        return {k.replace("-", "_"): v}


def merged(items: tuple[dict, ...] | list[dict] | None) -> dict:
    """Repeated KEY=VALUE options as one dict (a later KEY wins)."""
    return {k: v for item in items or () for k, v in item.items()}


def key_values_text(values: dict) -> str:
    """A dict as repeated KEY=VALUE options take it: {'whiten.bias': 3, 'bn': True} -> 'whiten.bias=3 bn=true'."""
    return " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items())


def model_arg_option(help_text: str | None = None) -> Callable:
    """--model-arg KEY=VALUE, repeatable: the model's own arguments (`cnnlab models NAME` lists them)."""
    return click.option("--model-arg", "model_args", type=KeyValueParam(), multiple=True, metavar="KEY=VALUE",
                        help=help_text or "Model argument, repeatable, as for `cnnlab train`: shortcut=false, bn=true, "
                                          "strides=3-3-3 (`cnnlab models NAME` lists them).")


def classes_option(what: str = "the data's classes") -> Callable:
    """--classes FILE|a,b,c: class names in index order."""
    return click.option("--classes", default=None, metavar="FILE|A,B,...",
                        help=f"Names of {what}, in index order: a file (one per line, or a JSON list) or a comma "
                             "list like cat,dog [default: the data's own names (folder names, a 'classes' array), "
                             "else 'class 0', 'class 1', ...].")


DEVICE_HELP = ("Where the network runs: auto (CUDA, else MPS, else the CPU; $CNNLAB_DEVICE overrides), cpu, cuda, "
               "cuda:N or mps.")


def device_option(help_text: str = DEVICE_HELP) -> Callable:
    """--device auto|cpu|cuda|cuda:N|mps (checked by cnnlab.devices.resolve_device when the model loads)."""
    return click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N|mps",
                        help=help_text)


#: The options that choose the model a command runs on, in --help order; each one's parameter name
#: is a field of ModelChoice.
MODEL_OPTIONS: tuple[Callable, ...] = (
    model_name_option(),
    model_arg_option(),
    weights_option(),
    click.option("--normalize", default=None,
                 help="Override input normalization: imagenet, cifar10, inception, tf-127-128, none."),
    click.option("--model-file", type=click.Path(), default=None,
                 help="A whole model from a file instead of --model/--weights: ONNX (.onnx), Keras (.keras, .h5), "
                      "a TensorFlow SavedModel directory, or a TF1 graph (.meta) with its checkpoint beside it."),
    click.option("--labels", type=click.Path(dir_okay=False), default=None,
                 help="Class names, one per line or a JSON list (default: the model's; for --model-file the "
                      "file's metadata)."),
    click.option("--input-range", default=None,
                 help="For --model-file: the pixels the model expects, 0-1, 0-255, -1-1 or caffe (BGR 0-255 minus "
                      "the ImageNet mean), instead of --normalize (default: the file's metadata, or detected)."),
    click.option("--layout", type=click.Choice(["auto", "nchw", "nhwc"]), default="auto", show_default=True,
                 help="For --model-file: the image input's layout (auto: NHWC when its last axis has 3 channels)."),
    click.option("--resize", default=None, metavar="N|none",
                 help="For --model-file: short side before the centre crop, or 'none' to resize the whole image "
                      "(default: the file's metadata, else 256/224 of the input size)."),
    device_option(),
)


@dataclass(frozen=True)
class ModelChoice:
    """The model a command runs on, as the model options name it."""

    model_name: str | None = None
    model_args: tuple[dict, ...] = ()
    weights: str | None = None
    normalize: str | None = None
    model_file: str | None = None
    labels: str | None = None
    input_range: str | None = None
    layout: str = "auto"
    resize: str | None = None
    device: str = "auto"

    def load(self, pretrained: bool = True) -> Classifier:
        """The model file, or the named model with the given weights file, else its published weights
        (random ones when `pretrained` is False, e.g. for questions about the graph alone), on --device."""
        from ..devices import resolve_device
        from ..models import create_model
        from ..models.labels import read_labels
        resolve_device(self.device)  # a device this machine lacks: one sentence before anything loads
        if self.model_file is not None:
            if self.model_args:
                raise CnnlabError("--model-arg shapes a registered --model; a --model-file brings its own architecture.")
            return self.load_file()
        file_only = [f"--{o}" for o, v in (("input-range", self.input_range), ("resize", self.resize),
                                            ("layout", self.layout != "auto")) if v]
        if file_only:
            raise CnnlabError(f"{', '.join(file_only)} describe{'s' if len(file_only) == 1 else ''} a --model-file; "
                              "for a registered model use --normalize.")
        labels = read_labels(self.labels)
        kwargs = merged(self.model_args)
        if self.weights is None:
            return create_model(self.model_name or DEFAULT_MODEL, pretrained=pretrained, normalize=self.normalize,
                                labels=labels, device=self.device, **kwargs)
        return create_model(self.model_name, weights=self.weights, normalize=self.normalize, labels=labels,
                            device=self.device, **kwargs)

    def load_file(self, input_size: tuple[int, int] | None = None) -> Classifier:
        """The --model-file as a Classifier (converted to PyTorch)."""
        from ..interop import load_model_file
        if self.model_name or self.weights:
            raise CnnlabError("--model-file is a whole model (architecture and weights); drop --model and --weights.")
        resize: int | None | str = "auto"
        if self.resize is not None:
            if self.resize.strip().lower() == "none":
                resize = None
            elif self.resize.strip().isdigit():
                resize = int(self.resize)
            else:
                raise CnnlabError(f"--resize '{self.resize}' is not a number of pixels or 'none'.")
        return load_model_file(self.model_file, labels=self.labels, input_size=input_size, normalize=self.normalize,
                               input_range=self.input_range, resize=resize,
                               channels={"auto": "auto", "nchw": "first", "nhwc": "last"}[self.layout],
                               device=self.device)


_CHOICE_FIELDS = tuple(f.name for f in fields(ModelChoice))
_CHOICE_KEY = "cnnlab.model_choice"  # where model_options leaves the choice for load_cli_model


def model_options(fn: Callable) -> Callable:
    """Add MODEL_OPTIONS to a command; it receives them as `model_choice: ModelChoice`.

    A command still written as `fn(model_name, weights, normalize, ...)` receives those three as before
    and calls `load_cli_model`, which finds the whole choice (every other model option) in click's context.
    """
    takes_choice = "model_choice" in inspect.signature(fn).parameters

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> Any:
        choice = ModelChoice(**{name: kwargs.pop(name) for name in _CHOICE_FIELDS})
        if takes_choice:
            return fn(*args, model_choice=choice, **kwargs)
        click.get_current_context().meta[_CHOICE_KEY] = choice
        return fn(*args, model_name=choice.model_name, weights=choice.weights, normalize=choice.normalize, **kwargs)

    for option in reversed(MODEL_OPTIONS):
        command = option(command)
    return command


def load_cli_model(model_name: str | None, weights: str | None, normalize: str | None = None) -> Classifier:
    """The model for commands that take the model options one by one (see `model_options`): the whole
    choice of the running command when these three are its own, else just these three."""
    ctx = click.get_current_context(silent=True)
    choice = ctx.meta.get(_CHOICE_KEY) if ctx is not None else None
    if choice is None or (choice.model_name, choice.weights, choice.normalize) != (model_name, weights, normalize):
        choice = ModelChoice(model_name, weights, normalize)
    return choice.load()


def join_processes(device: str) -> DistContext:
    """Under torchrun, join the process group for --device (NCCL for GPUs, gloo for the CPU) before the
    model loads; this process's place among them (alone: rank 0 of 1)."""
    from ..devices import resolve_device
    from ..distributed import context
    return context(resolve_device(device))


class FractionParam(click.ParamType):
    """A click type for eps/step sizes written as fractions such as 8/255."""

    name = "FRACTION"

    def __init__(self, what: str = "value", lo: float = 0.0, hi: float = 1.0) -> None:
        self.what, self.lo, self.hi = what, lo, hi

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_fraction(value, f"--{param.name.replace('_', '-')}" if param else self.what, self.lo, self.hi)
        except CnnlabError as e:
            self.fail(str(e), param, ctx)


class Number(click.ParamType):
    """A finite float within [lo, hi] (nan and inf refused where the command line is parsed, in one sentence
    like every user error)."""

    name = "NUMBER"

    def __init__(self, lo: float = -math.inf, hi: float = math.inf) -> None:
        self.lo, self.hi = lo, hi

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        what = f"--{param.name.replace('_', '-')}" if param else "value"
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise CnnlabError(f"{what} '{value}' is not a number.") from None
        if not math.isfinite(x) or not self.lo <= x <= self.hi:
            raise CnnlabError(f"{what} must be a finite number in [{self.lo:g}, {self.hi:g}], not {value}.")
        return x


def out_file(out: str | Path, filename: str, force: bool = False, named: bool = True) -> Path:
    """The one file a command writes: `filename` inside the --out directory (made when missing); an
    existing file is kept unless `force`. An --out that looks like the file itself gets the fix."""
    d = Path(out)
    if d.suffix.lower() == Path(filename).suffix.lower() and not d.is_dir():
        fix = f"--out {d.parent} --filename {d.name}" if named else f"--out {d.parent} (it writes {filename} there)"
        raise CnnlabError(f"--out is the directory this command writes, not the file; use {fix}.")
    if d.exists() and not d.is_dir():
        raise CnnlabError(f"--out '{d}' is a file; choose a directory.")
    path = d / filename
    if path.exists() and not force:
        raise CnnlabError(f"'{path}' already exists; choose another --out{' or --filename' if named else ''}, or "
                          "pass --force to replace it.")
    d.mkdir(parents=True, exist_ok=True)
    return path


def trained_model(checkpoint: str | None, choice: ModelChoice) -> Classifier:
    """The model of a command that takes a CHECKPOINT (a checkpoint file or a run directory) or the model
    options (e.g. --model cifar_resnet20 --weights published.th), one or the other."""
    from ..runs import load_trained_model
    chosen = choice.model_name or choice.weights or choice.model_file
    if checkpoint and chosen:
        raise CnnlabError("Give a CHECKPOINT (or run directory) or the model options (--model/--weights/--model-file), "
                          "not both.")
    if checkpoint:
        from ..devices import resolve_device
        resolve_device(choice.device)  # a device this machine lacks: one sentence before anything loads
        return load_trained_model(checkpoint, device=choice.device)
    if not chosen:
        raise CnnlabError("Name the model: a CHECKPOINT or run directory, or --model NAME --weights FILE (a published "
                          "checkpoint), or --model-file.")
    return choice.load()


def echo_json(obj: Any) -> None:
    """Print `obj` as strict, indented JSON (cnnlab.runs.json_text: no NaN, paths as text, results
    through their to_dict)."""
    click.echo(json_text(obj))


def warn(msg: str) -> None:
    """One line on stderr, prefixed 'warning: '."""
    click.echo(f"warning: {msg}", err=True)


def load_or_skip(sources: Sequence[str | Path], model: Classifier) -> tuple[list[str], torch.Tensor]:
    """The image files a command works on, loaded the model's way: each unreadable one is skipped with a
    warning naming it and why (like `cnnlab predict`); an error only when none could be read."""
    from ..images import load_many
    good, x, bad = load_many(sources, model)
    for _, reason in bad:
        warn(reason)
    if x is None:
        raise CnnlabError(f"None of the {len(bad)} images could be read; see the warnings above.")
    return good, x
