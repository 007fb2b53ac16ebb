"""Array files: .npz layouts (decoded arrays, JPEG bytes), .npy pairs, floats and grey, on real CIFAR-10 and Pets."""
from __future__ import annotations

import numpy as np
import torch

from cnnlab.data import EncodedImages, ImageArrays, load_array_file, load_dataset, read_array_file
from tests.conftest import shared


def test_npz_with_x_y_and_classes(test_set):
    assert test_set.x.shape == (10000, 3, 32, 32) and test_set.x.dtype == torch.uint8
    assert test_set.classes[3] == "cat" and int(test_set.y.max()) == 9
    raw = np.load(shared("cifar10_test.npz"))
    assert torch.equal(test_set.x[17], torch.from_numpy(raw["x"][17]).permute(2, 0, 1))  # NHWC -> NCHW, untouched


def test_jpeg_bytes_layout_decodes_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    src = np.load(shared("cifar10_train_jpeg.npz"))
    small = tmp_path / "small.npz"
    n = 50
    np.savez(small, jpeg=src["jpeg"][: src["offsets"][n]], offsets=src["offsets"][: n + 1], y=src["y"][:n],
             classes=src["classes"])
    first = load_array_file(small)
    assert first.x.shape == (n, 3, 32, 32) and list(first.y[:3]) == list(src["y"][:3])
    assert len(list((tmp_path / "cache" / "decoded").glob("*.npy"))) == 1
    again = load_array_file(small)
    assert torch.equal(first.x, again.x)
    lossless = np.load(shared("cifar10_train_first200_lossless.npz"))["x"][:n]
    err = np.abs(first.x.permute(0, 2, 3, 1).numpy().astype(float) - lossless.astype(float)).mean()
    assert err < 8  # JPEG-75 of the same training images, not other images
    kept = load_array_file(small, decode=False)  # for extraction at a model's own input size
    assert isinstance(kept, EncodedImages) and len(kept) == n and kept.file(0)[:2] == b"\xff\xd8"


def test_photos_of_mixed_sizes_stay_encoded_and_split_by_their_array():
    split = read_array_file(shared("oxford_pets_subset.npz"))  # 256 px short side, various long sides
    assert isinstance(split.train, EncodedImages) and (len(split.train), len(split.test)) == (259, 111)
    assert split.classes[0] == "Abyssinian" and len(split.classes) == 37
    assert np.bincount(split.test.y).tolist() == [3] * 37
    assert len(split.all()) == 370 and split.part("val") is split.test


def test_seed_style_npy_pair_and_unlabelled(tmp_path):
    d = np.load(shared("cifar10_train_first200_lossless.npz"))
    np.save(tmp_path / "hw4-train-data.npy", d["x"])
    np.save(tmp_path / "hw4-train-labels.npy", d["y"].astype(np.int64))
    np.save(tmp_path / "hw4-test-data.npy", d["x"][:10])
    train = load_dataset(str(tmp_path / "hw4-train-data.npy"))
    assert len(train) == 200 and torch.equal(train.y, torch.from_numpy(d["y"].astype(np.int64)))
    test = load_dataset(str(tmp_path / "hw4-test-data.npy"), "all")
    assert len(test) == 10 and bool((test.y == -1).all())


def test_float_and_grey_arrays_become_uint8_rgb(tmp_path):
    x = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "g.npz", x=x, y=np.arange(4))
    g = load_dataset(str(tmp_path / "g.npz"))
    assert isinstance(g, ImageArrays) and g.x.shape == (4, 3, 8, 8) and torch.equal(g.x[:, 0], g.x[:, 2])
    assert abs(int(g.x[0, 0, 0, 0]) - round(float(x[0, 0, 0]) * 255)) <= 1
    np.savez(tmp_path / "g1.npz", x=(x[..., None] * 255).astype(np.uint8), y=np.arange(4))  # N x H x W x 1
    assert load_dataset(str(tmp_path / "g1.npz")).x.shape == (4, 3, 8, 8)
