"""`cnnlab models` end to end."""
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
    assert "efficientnet_lite0" in table and "bundled (offline)" in table
