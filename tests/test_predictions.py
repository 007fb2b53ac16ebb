"""predict_files: every readable file predicted once, in order, whatever the batch size; bad files skipped
with their reason; a bare module predicts what the same module wrapped predicts."""
from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.predictions import predict_files


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    for name in ("chelsea", "coffee", "rocket"):
        shutil.copy(cnnlab.bundled_photo(name), d / f"{name}.png")
    (d / "broken.png").write_bytes(b"\x89PNG not really")
    return d


def test_files_in_order_bad_ones_skipped_batches_equal(lite0, photo_dir):
    one = predict_files(lite0, [photo_dir], k=2, batch_size=1)
    many = predict_files(lite0, [photo_dir], k=2, batch_size=32)
    assert [p.image for p in one.predictions] == [str(photo_dir / f"{n}.png") for n in ("chelsea", "coffee", "rocket")]
    assert [[t.index for t in p.top] for p in one.predictions] == [[t.index for t in p.top] for p in many.predictions]
    assert [t.prob for p in one.predictions for t in p.top] == pytest.approx(
        [t.prob for p in many.predictions for t in p.top], abs=1e-5)
    assert one.files == 4 and [path for path, _ in one.skipped] == [str(photo_dir / "broken.png")]
    assert "broken.png" in one.skipped[0][1]
    assert one.predictions[1].top[0].label == "espresso" and len(one.predictions[1].top) == 2
    d = one.to_dict()
    assert d["skipped"][0]["image"] == str(photo_dir / "broken.png") and len(d["predictions"]) == 3


def test_a_bare_module_predicts_as_the_wrapped_one(photo_dir):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 5)).eval()
    bare = predict_files(net, [photo_dir / "chelsea.png", photo_dir / "coffee.png"], k=3)
    wrapped = predict_files(cnnlab.wrap(net), [photo_dir / "chelsea.png", photo_dir / "coffee.png"], k=3)
    assert [p.to_dict() for p in bare.predictions] == [p.to_dict() for p in wrapped.predictions]
    assert bare.predictions[0].top[0].label.startswith("class ")


def test_no_image_files_is_one_error(lite0, tmp_path):
    with pytest.raises(CnnlabError, match="No image files found"):
        predict_files(lite0, [tmp_path])
