"""`cnnlab export`: a model written as ONNX and checked by onnxruntime; a bad target is one sentence."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cnnlab.cli import main
from tests.conftest import shared


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_export_writes_a_checked_onnx_file(tmp_path):
    pytest.importorskip("onnxruntime", reason="needs the 'onnx' extra: pip install 'cnnlab[onnx]'")
    out = tmp_path / "cifar_resnet20.onnx"
    weights = str(shared("weights/akamaster_cifar10_resnet20-12fca82f.th"))
    r = run("export", "--model", "cifar_resnet20", "--weights", weights, "--format", "onnx", "--out", str(tmp_path),
            "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["path"] == str(out) and out.is_file() and res["max_abs_diff"] < 1e-4
    assert res["outputs"] == "logits [N,10]"
    r = run("export", "--model", "cifar_resnet20", "--weights", weights, "--out", str(tmp_path))
    assert r.exit_code == 1 and "already exists" in r.output and "--force" in r.output
