"""`cnnlab inspect` end to end: JSON keys, --input-size, --layers, and a bad model name as one sentence."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cnnlab.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_inspect_json_keys_and_input_size():
    r = run("inspect", "--model", "cifar_resnet20", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert {"nodes", "op_counts", "placeholders", "max_fan_in", "logits_node", "params", "macs", "layers"} <= set(d)
    assert d["params"] == 269_722 and d["logits_node"] == "net_linear" and d["placeholders"] == 1
    assert d["max_fan_in"]["inputs"] == 2 and len(d["max_fan_in"]["nodes"]) == 9  # the residual adds, tied
    assert {n["op"] for n in d["max_fan_in"]["nodes"]} == {"add"}
    r2 = run("inspect", "--model", "cifar_resnet20", "--input-size", "64", "64", "--json")
    d2 = json.loads(r2.stdout)
    assert d2["macs"] == 4 * d["macs"] - 3 * 640  # convs scale with area; the 64x10 linear does not
    r3 = run("inspect", "--model", "cifar_resnet20", "--layers")
    assert "receptive field" in r3.stdout and "net_layer3_2_conv2" in r3.stdout


def test_inspect_unknown_model_is_one_sentence():
    r = run("inspect", "--model", "resnet_20")
    assert r.exit_code == 1 and r.stderr.startswith("error: Unknown model 'resnet_20'")
    assert r.stderr.count("\n") == 1


def test_model_args_shape_the_inspected_model():
    """The no-shortcut and BatchNorm variants of the course ResNet can be counted side by side."""
    def inspect(*args: str) -> dict:
        r = run("inspect", "--model", "course_resnet", *args, "--json")
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)
    plain, noskip, bn = inspect(), inspect("--model-arg", "shortcut=false"), inspect("--model-arg", "bn=true")
    assert plain["op_counts"]["add"] == 9 and "add" not in noskip["op_counts"]
    assert plain["params"] - noskip["params"] == (16 * 32 + 32) + (32 * 64 + 64)  # the two 1x1 stride-2 shortcuts
    assert bn["op_counts"]["BatchNorm2d"] == 19 and "BatchNorm2d" not in plain["op_counts"]
    bad = run("inspect", "--model", "course_resnet", "--model-arg", "act=tanh")
    assert bad.exit_code == 1 and "has no argument 'act'" in bad.stderr and bad.stderr.count("\n") == 1
