"""A model builder's own arguments, read from its signature and docstring: listed with default and
meaning (`model_arguments`, `cnnlab models NAME`) and checked before the builder runs, so a wrong
name, type or value is one sentence naming the valid arguments rather than a TypeError.

A builder documents each argument on one line of its docstring's `Args:` section (`name: meaning`);
its annotation says what values it takes (bool, int, float, str, a Literal of choices, list[int]),
and text from the command line ('true', '3', '0.5') is converted to that type.
"""
from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

from ..errors import CnnlabError, close_matches

#: Arguments every builder takes, passed by create_model itself (not listed as the model's own).
COMMON = ("pretrained", "num_classes")
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


@dataclass(frozen=True)
class ModelArgument:
    """One argument of a model builder: its name, default, the values it takes and what it means."""

    name: str
    default: Any
    annotation: Any
    help: str

    @property
    def kind(self) -> str:
        """What values it takes, in words ('true or false', 'relu or tanh', 'an integer', ...)."""
        return _kind(self.annotation)

    def to_dict(self) -> dict:
        default = list(self.default) if isinstance(self.default, tuple) else self.default
        return {"name": self.name, "default": default, "type": self.kind, "help": self.help}


def builder_arguments(fn: Callable) -> list[ModelArgument]:
    """The arguments of builder `fn` besides pretrained/num_classes, in signature order."""
    helps = _docstring_args(inspect.getdoc(fn) or "")
    out = []
    for p in inspect.signature(fn, eval_str=True).parameters.values():
        if p.name in COMMON or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        annotation = p.annotation if p.annotation is not inspect.Parameter.empty else Any
        out.append(ModelArgument(p.name, None if p.default is inspect.Parameter.empty else p.default,
                                 annotation, helps.get(p.name, "")))
    return out


def check_arguments(model: str, arguments: list[ModelArgument], kwargs: dict) -> dict:
    """`kwargs` converted to each argument's type, or one sentence naming what is wrong and the valid ones."""
    known = {a.name: a for a in arguments}
    out = {}
    for key, value in kwargs.items():
        if key not in known:
            if not known:
                raise CnnlabError(f"Model '{model}' takes no arguments of its own, so '{key}' is not one "
                                  "(only pretrained and num_classes).")
            raise CnnlabError(f"Model '{model}' has no argument '{key}'{close_matches(key, known)}; its arguments "
                              f"are {', '.join(known)} (`cnnlab models {model}` explains them).")
        arg = known[key]
        try:
            out[key] = _convert(value, arg.annotation)
        except ValueError:
            raise CnnlabError(f"Model argument {key}={_show(value)} of '{model}' must be {arg.kind} "
                              f"(`cnnlab models {model}` explains its arguments).") from None
    return out


def int_list(value: str | int | list[int] | tuple[int, ...], what: str) -> list[int]:
    """'512,256' (or '512-256', 512, [512, 256]) -> [512, 256]; anything else is one sentence about `what`."""
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        try:
            return [int(w) for w in value.replace("-", ",").split(",") if w.strip()]
        except ValueError:
            raise CnnlabError(f"{what} '{value}' must be integers separated by commas, e.g. 512,256.") from None
    return [int(w) for w in value]


def _docstring_args(doc: str) -> dict[str, str]:
    """{name: meaning} from an 'Args:' section (a meaning may continue on more-indented lines), without
    the closing full stop."""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    if "Args:" not in [ln.strip() for ln in lines]:
        return out
    start = [ln.strip() for ln in lines].index("Args:") + 1
    indent, name = None, None
    for line in lines[start:]:
        if not line.strip():
            break
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        if depth < indent:
            break
        m = re.match(r"\s*(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
        if depth == indent and m:
            name = m.group(1)
            out[name] = m.group(2).strip()
        elif name is not None:
            out[name] += " " + line.strip()
    return {k: v.rstrip(".") for k, v in out.items()}


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _kind(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _is_union(annotation):
        return " or ".join(_kind(a) for a in args if a is not type(None))
    if origin is Literal:
        names = [str(a) for a in args]
        return " or ".join(names) if len(names) <= 2 else f"one of {', '.join(names)}"
    if origin in (list, tuple):
        return f"a list of {_kind(args[0]).removeprefix('an ').removeprefix('a ')}s" if args else "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "text"}.get(annotation, "any value")


def _convert(value: Any, annotation: Any) -> Any:
    """`value` as `annotation` says, or ValueError."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _is_union(annotation):
        members = [a for a in args if a is not type(None)]
        if value is None and type(None) in args:
            return None
        for member in members:  # a value that already has a member's type stays as it is
            if member in (bool, int, float, str) and type(value) is member:
                return value
        for member in members:
            try:
                return _convert(value, member)
            except ValueError:
                continue
        raise ValueError(value)
    if origin is Literal:
        for choice in args:
            if str(choice).lower() == str(value).strip().lower():
                return choice
        raise ValueError(value)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(value)
        return [_convert(v, args[0]) if args else v for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if isinstance(value, (str, int)) and text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(value)
    if annotation is int:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, (int, str)):
            return int(value)  # ValueError for text that is no integer
        raise ValueError(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(value)
        return float(value)
    if annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # the command line reads widths=512 as a number
        raise ValueError(value)
    return value


def _show(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)
