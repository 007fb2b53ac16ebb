"""`cnnlab transfer` end to end on folders of real Pets photos."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cnnlab.cli import main
from tests.conftest import shared


@pytest.fixture(scope="module")
def pets_folder(tmp_path_factory):
    """train/ and test/ folders of real photos: 4 breeds, 5 + 2 photos each, plus one corrupt file."""
    d = np.load(shared("oxford_pets_subset.npz"))
    root = tmp_path_factory.mktemp("pets-folder")
    for b in (0, 6, 20, 30):  # two cats and two dogs
        idx = np.flatnonzero(d["label"] == b)
        for rank, i in enumerate(idx[:7]):
            part = "train" if rank < 5 else "test"
            f = root / part / str(d["classes"][b]) / str(d["source_name"][i])
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(d["jpeg"][d["offsets"][i]:d["offsets"][i + 1]].tobytes())
    (root / "train" / str(d["classes"][0]) / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def run(*args: str):
    return CliRunner().invoke(main, ["transfer", *args], catch_exceptions=False)


def test_transfer_json_on_a_photo_folder_then_from_cache(pets_folder, tmp_path):
    cache = str(tmp_path / "cache")
    res = run("--model", "efficientnet_lite0", "--data", str(pets_folder), "--cache-dir", cache, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    for key in ("top1", "mean_class_accuracy", "mean_average_precision", "per_class", "n_train", "n_test",
                "feature_dim", "seconds"):
        assert key in out
    assert (out["n_train"], out["n_test"], out["feature_dim"]) == (20, 8, 1280)
    assert out["skipped"] == 1 and "corrupt.jpg" in out["skipped_images"][0]["image"]
    assert "skipped 1 images" in res.stderr
    assert len(out["per_class"]) == 4 and out["mean_class_accuracy"] >= 0.75  # 4 distinct breeds
    assert out["cache"] == {"train": "miss", "test": "miss"}
    again = run("--data", str(pets_folder), "--cache-dir", cache, "--json", "--classifier", "svm")
    second = json.loads(again.stdout)
    assert second["cache"] == {"train": "hit", "test": "hit"} and second["classifier"] == "svm"
    assert second["feature_seconds"] < 2


def test_transfer_table_and_out_folder(pets_folder, tmp_path):
    out = tmp_path / "result"
    res = run("--data", str(pets_folder), "--cache-dir", str(tmp_path / "c"), "--no-l2", "--C", "10",
              "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    assert "mean per-class accuracy" in res.stdout and "C=10 (fixed)" in res.stdout
    assert "L2-normalized" not in res.stdout
    saved = json.loads((out / "result.json").read_text())
    assert saved["l2"] is False and saved["C"] == 10
    assert (out / "confusion.png").stat().st_size > 5000
    again = run("--data", str(pets_folder), "--out", str(out), "-q")
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_transfer_bad_input_is_one_sentence(tmp_path, pets_folder):
    one = tmp_path / "one"
    (one / "cats").mkdir(parents=True)
    src = next((pets_folder / "train").rglob("*.jpg"))
    (one / "cats" / "a.jpg").write_bytes(src.read_bytes())
    res = run("--data", str(one), "--no-cache")
    assert res.exit_code == 1 and "error: Folder" in res.stderr and "only one class" in res.stderr
    res = run("--data", "petz", "--no-cache")
    assert res.exit_code == 1 and "did you mean: pets" in res.stderr
    res = run("--data", "pets", "--data-dir", str(tmp_path / "nothing"))
    assert res.exit_code == 1 and "--download" in res.stderr
    res = run("--data", "miniplaces")
    assert res.exit_code == 1 and "--data-dir" in res.stderr


def test_finetune_goes_through_the_trainer_with_a_frozen_backbone_first(tmp_path):
    """One epoch with the backbone frozen: only the new 2-class head may change."""
    import torch

    import cnnlab
    from cnnlab.models.weights import read_checkpoint
    from cnnlab.transfer import finetune
    d = np.load(shared("oxford_pets_subset.npz"))
    for b in (0, 6):
        for rank, i in enumerate(np.flatnonzero(d["label"] == b)[:3]):
            f = tmp_path / "data" / ("train" if rank < 2 else "test") / str(d["classes"][b]) / f"{i}.jpg"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(d["jpeg"][d["offsets"][i]:d["offsets"][i + 1]].tobytes())
    run = finetune("efficientnet_lite0", str(tmp_path / "data"), epochs=1, out=tmp_path / "run", freeze_epochs=1,
                   batch_size=4, progress=False)
    state = read_checkpoint(run.path / "checkpoints" / "last.pt")["state_dict"]
    start = cnnlab.create_model("efficientnet_lite0", pretrained=True).net.state_dict()
    assert state["_fc.weight"].shape == (2, 1280)
    assert torch.equal(state["_conv_stem.weight"], start["_conv_stem.weight"])
    assert torch.equal(state["_blocks.15._project_conv.weight"], start["_blocks.15._project_conv.weight"])
    metrics = (run.path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(metrics[-1])["val_top1"] is not None  # validated on the test/ folder
