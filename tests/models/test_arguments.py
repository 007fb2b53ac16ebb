"""Model arguments: listed with default and meaning, converted from command-line text, and a wrong name,
type or value is one sentence naming the valid ones (never a TypeError)."""
from __future__ import annotations

from typing import Literal

import pytest
import torch

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.models import model_arguments
from cnnlab.models.arguments import builder_arguments, check_arguments


def test_arguments_listed_with_defaults_and_meanings():
    args = {a.name: a for a in model_arguments("course_resnet")}
    assert list(args) == ["strides", "bn", "shortcut", "dropout", "width"]
    assert args["bn"].default is False and args["shortcut"].default is True and args["dropout"].default == 0.3
    assert args["bn"].kind == "true or false" and args["width"].kind == "an integer"
    assert all(a.help and not a.help.endswith(".") for a in args.values())
    assert {a.name for a in model_arguments("mlp")} == {"widths", "activation", "input_size"}
    act = next(a for a in model_arguments("mlp") if a.name == "activation")
    assert act.kind == "relu or tanh" and act.to_dict() == {"name": "activation", "default": "relu",
                                                            "type": "relu or tanh", "help": act.help}
    assert model_arguments("resnet18") == []
    assert [a.default for a in model_arguments("simple_cnn_bn")][:3] == [True, False, False]  # the variant's


def test_command_line_text_is_converted_to_the_arguments_type():
    m = cnnlab.create_model("course_resnet", bn="true", shortcut="no", dropout="0.1", width="8", strides="2-1")
    assert m.spec["kwargs"] == {"num_classes": 100, "bn": True, "shortcut": False, "dropout": 0.1, "width": 8,
                                "strides": "2-1"}
    assert isinstance(m.net.blocks[0].bn1, torch.nn.BatchNorm2d)
    assert cnnlab.create_model("mlp", widths=256, activation="TANH").spec["kwargs"]["activation"] == "tanh"


@pytest.mark.parametrize("name,kwargs,words", [
    ("mlp", {"act": "tanh"}, ["'act'", "did you mean: activation", "widths, activation, input_size"]),
    ("mlp", {"activation": "sigmoid"}, ["activation=sigmoid", "relu or tanh"]),
    ("course_resnet", {"bn": "maybe"}, ["bn=maybe", "true or false"]),
    ("course_resnet", {"width": "1.5"}, ["width=1.5", "an integer"]),
    ("course_resnet", {"dropout": "lots"}, ["dropout=lots", "a number"]),
    ("cifar_resnet20", {"bogus": 1}, ["'bogus'", "shortcut, width"]),
    ("resnet18", {"bogus": 1}, ["'bogus'", "no arguments"]),
    ("efficientnet_lite0", {"drop_rate": 0.1}, ["dropout, drop_connect"])])
def test_wrong_argument_is_one_sentence(name, kwargs, words):
    with pytest.raises(CnnlabError) as e:
        cnnlab.create_model(name, **kwargs)
    msg = str(e.value)
    assert all(w in msg for w in words), msg
    assert "\n" not in msg and msg.endswith(".") and not isinstance(e.value, TypeError)


def test_docstring_and_annotation_parsing():
    def build(pretrained: bool = False, num_classes: int | None = None, mode: Literal["a", "b", "c"] = "a",
              sizes: str | list[int] = "1,2", scale: float = 1.0) -> None:
        """A builder.

        Args:
            mode: how it works, explained over
                two lines.
            sizes: sizes, e.g. 1,2.
            scale: a factor.
        """
    args = builder_arguments(build)
    assert [(a.name, a.kind) for a in args] == [("mode", "one of a, b, c"), ("sizes", "text or a list of integers"),
                                               ("scale", "a number")]
    assert args[0].help == "how it works, explained over two lines"
    assert check_arguments("m", args, {"mode": "B", "sizes": [3, "4"], "scale": "2"}) == {
        "mode": "b", "sizes": [3, 4], "scale": 2.0}
    assert check_arguments("m", args, {"sizes": 5})["sizes"] == "5"
