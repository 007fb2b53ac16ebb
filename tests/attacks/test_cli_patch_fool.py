"""`cnnlab patch`, `cnnlab fool`, and DeepFool, Square and the spatial attack through `cnnlab attack` /
`attack-eval`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from cnnlab.cli import main
from tests.conftest import shared

W20 = "weights/akamaster_cifar10_resnet20-12fca82f.th"


pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def model_args() -> list[str]:
    return ["--model", "cifar_resnet20", "--weights", str(shared(W20))]


def test_fool_cli_writes_confident_images(tmp_path):
    out = tmp_path / "fool"
    r = run("fool", *model_args(), "--target", "cat,9", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "2/2 reached 0.99" in r.output
    doc = json.loads((out / "fool.json").read_text())
    assert [row["target"]["index"] for row in doc["images"]] == [3, 9]
    assert all(row["confidence"] >= 0.99 for row in doc["images"])
    assert (out / "figures" / "fooling.png").stat().st_size > 1000
    # the saved 8-bit PNG is what a user keeps: it must still fool the model
    import cnnlab
    m = cnnlab.create_model("cifar_resnet20", weights=shared(W20))
    x = cnnlab.load_images([row["png"] for row in doc["images"]], m)
    assert (m.probabilities(x).argmax(1) == torch.tensor([3, 9])).all()
    again = run("fool", *model_args(), "--target", "cat", "--out", str(out))  # never overwrite silently
    assert again.exit_code == 1 and "already exists" in again.output


def test_fool_cli_evolve_and_bad_class(tmp_path):
    r = run("fool", *model_args(), "--target", "ship", "--method", "evolve", "--steps", "150",
            "--out", str(tmp_path / "e"), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["method"] == "evolve" and doc["images"][0]["calls"] >= 32
    bad = run("fool", *model_args(), "--target", "kat", "--out", str(tmp_path / "b"))
    assert bad.exit_code == 1 and "error:" in bad.output and "cat" in bad.output


def test_patch_cli(tmp_path):
    out = tmp_path / "patch"
    r = run("patch", *model_args(), "--data", str(shared("cifar10_test.npz")), "--target", "airplane",
            "--area", "0.15", "--steps", "40", "--limit", "80", "--out", str(out))
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "patch.json").read_text())
    assert doc["target"]["index"] == 0 and doc["heldout_n"] >= 30
    assert 0 <= doc["heldout_success"] <= 1
    assert (out / "patch.png").exists() and (out / "figures" / "patch.png").exists()


@pytest.fixture(scope="module")
def cat_png(tmp_path_factory):
    """A CIFAR-10 test image (a correctly classified cat) saved as a PNG."""
    from cnnlab.images import save_image
    d = np.load(shared("cifar10_train_first200_lossless.npz"))
    i = int(np.nonzero(d["y"] == 3)[0][0])
    path = tmp_path_factory.mktemp("img") / "cat.png"
    save_image(torch.from_numpy(d["x"][i]).permute(2, 0, 1).float() / 255, path)
    return path


@pytest.mark.parametrize("method", ["deepfool", "square", "spatial"])
def test_attack_cli_new_methods(tmp_path, cat_png, method):
    out = tmp_path / method
    r = run("attack", str(cat_png), *model_args(), "--method", method, "--out", str(out), "--no-robustness", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["method"] == method
    # DeepFool and Square always fool this cat; a training image can resist every rotation/shift
    assert doc["success"] is True or (method == "spatial" and doc["final"]["index"] == doc["original"]["index"])
    if method == "spatial":
        assert doc["params"]["grid_points"] == 775
    if method == "square":
        assert doc["linf"] <= 8 / 255 + 1e-6


def test_attack_eval_cli_deepfool(tmp_path):
    r = run("attack-eval", *model_args(), "--data", str(shared("cifar10_test.npz")), "--method", "deepfool",
            "--limit", "24", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["robust_top1"] <= 0.05 and doc["success_rate"] >= 0.95
    assert doc["params"]["median_l2"] < 0.5
