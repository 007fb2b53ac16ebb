"""Options and helpers shared by the CLI commands."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import click

from ..errors import CnnlabError
from ..runs import fresh_out_dir, json_default  # noqa: F401  (fresh_out_dir: re-exported for the commands)

DEFAULT_MODEL = "efficientnet_lite0"


def model_options(fn: Callable) -> Callable:
    """--model / --weights / --normalize / --num-classes, in that order in --help."""
    fn = click.option("--normalize", default=None,
                      help="Override input normalization: imagenet, cifar10, inception, tf-127-128, none.")(fn)
    fn = click.option("--weights", type=click.Path(dir_okay=False), default=None,
                      help="Weights file: a cnnlab checkpoint, a state dict or .safetensors (never unpickled).")(fn)
    fn = click.option("--model", "model_name", default=None,
                      help=f"Registered model name (see `cnnlab models`; default {DEFAULT_MODEL}).")(fn)
    return fn


def load_cli_model(model_name: str | None, weights: str | None, normalize: str | None = None, **kwargs: Any):
    """The model the user named: pretrained when no weights file is given."""
    from ..models import create_model
    if weights is None:
        return create_model(model_name or DEFAULT_MODEL, pretrained=True, normalize=normalize, **kwargs)
    return create_model(model_name, weights=weights, normalize=normalize, **kwargs)


def parse_fraction(value: str | float, what: str = "value", lo: float = 0.0, hi: float = 1.0) -> float:
    """'8/255', '0.03' or 0.03 -> float in [lo, hi]; anything else is one clear error."""
    try:
        x = value if isinstance(value, float) else _fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        raise CnnlabError(f"{what} '{value}' is not a number or fraction like 8/255.") from None
    if not lo <= x <= hi:
        raise CnnlabError(f"{what} {value} is outside [{lo:g}, {hi:g}]; pixel values are in [0, 1] (use e.g. 8/255).")
    return x


def _fraction(text: str) -> float:
    """'8/255', '0.5/255', '0.03' -> float (Fraction alone refuses a decimal numerator such as 0.5/255)."""
    if "/" in text:
        num, den = text.split("/", 1)
        return float(Fraction(num.strip())) / float(Fraction(den.strip()))
    return float(Fraction(text))


class FractionParam(click.ParamType):
    """A click type for eps/step sizes written as fractions such as 8/255."""

    name = "FRACTION"

    def __init__(self, what: str = "value", lo: float = 0.0, hi: float = 1.0) -> None:
        self.what, self.lo, self.hi = what, lo, hi

    def convert(self, value, param, ctx):  # noqa: ANN001
        if isinstance(value, float):
            return value
        try:
            return parse_fraction(value, f"--{param.name.replace('_', '-')}" if param else self.what, self.lo, self.hi)
        except CnnlabError as e:
            self.fail(str(e), param, ctx)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=json_default))


def warn(msg: str) -> None:
    click.echo(f"warning: {msg}", err=True)


def fail_if_none(n_ok: int, n_bad: int, what: str = "images") -> None:
    if n_bad:
        warn(f"skipped {n_bad} bad {what}")
    if n_ok == 0:
        sys.exit(1)
