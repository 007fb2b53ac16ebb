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
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import click

from ..errors import CnnlabError
from ..parsing import parse_fraction
from ..runs import fresh_out_dir, json_default  # noqa: F401  (fresh_out_dir: re-exported for the commands)

if TYPE_CHECKING:
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


#: The options that choose the model a command runs on, in --help order; each one's parameter name
#: is a field of ModelChoice.
MODEL_OPTIONS: tuple[Callable, ...] = (
    model_name_option(),
    weights_option(),
    click.option("--normalize", default=None,
                 help="Override input normalization: imagenet, cifar10, inception, tf-127-128, none."),
)


@dataclass(frozen=True)
class ModelChoice:
    """The model a command runs on, as the model options name it."""

    model_name: str | None = None
    weights: str | None = None
    normalize: str | None = None

    def load(self, pretrained: bool = True) -> Classifier:
        """The named model with the given weights file, else its published weights (random ones when
        `pretrained` is False, e.g. for questions about the graph alone)."""
        from ..models import create_model
        if self.weights is None:
            return create_model(self.model_name or DEFAULT_MODEL, pretrained=pretrained, normalize=self.normalize)
        return create_model(self.model_name, weights=self.weights, normalize=self.normalize)


_CHOICE_FIELDS = tuple(f.name for f in fields(ModelChoice))


def model_options(fn: Callable) -> Callable:
    """Add MODEL_OPTIONS to a command; it receives them as `model_choice: ModelChoice`.

    A command still written as `fn(model_name, weights, normalize, ...)` receives those three as before
    (and calls `load_cli_model`); such commands get new model options only once they take `model_choice`.
    """
    takes_choice = "model_choice" in inspect.signature(fn).parameters

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _CHOICE_FIELDS}
        if takes_choice:
            return fn(*args, model_choice=ModelChoice(**values), **kwargs)
        return fn(*args, model_name=values["model_name"], weights=values["weights"],
                  normalize=values["normalize"], **kwargs)

    for option in reversed(MODEL_OPTIONS):
        command = option(command)
    return command


def load_cli_model(model_name: str | None, weights: str | None, normalize: str | None = None) -> Classifier:
    """The model for commands that take the model options one by one (see `model_options`)."""
    return ModelChoice(model_name, weights, normalize).load()


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


def echo_json(obj: Any) -> None:
    """Print `obj` as indented JSON (paths as text, result objects through their to_dict)."""
    click.echo(json.dumps(obj, indent=2, default=json_default))


def warn(msg: str) -> None:
    """One line on stderr, prefixed 'warning: '."""
    click.echo(f"warning: {msg}", err=True)
