"""Datasets and the in-memory batch loader, on the real CIFAR-10 files in ../shared/data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.data import (Augment, ImageArrays, TensorLoader, augment_batch, load_array_file, load_dataset,
                         train_val_split)
from cnnlab.errors import CnnlabError
from tests.conftest import shared


@pytest.fixture(scope="module")
def test_set():
    return load_dataset(str(shared("cifar10_test.npz")))


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
    assert g.x.shape == (4, 3, 8, 8) and torch.equal(g.x[:, 0], g.x[:, 2])
    assert abs(int(g.x[0, 0, 0, 0]) - round(float(x[0, 0, 0]) * 255)) <= 1


def test_bad_data_gets_one_clear_sentence(tmp_path):
    with pytest.raises(CnnlabError, match="did you mean: cifar10"):
        load_dataset("cifar01")
    with pytest.raises(CnnlabError, match="does not exist"):
        load_dataset(str(tmp_path / "nope.npz"))
    np.savez(tmp_path / "bad.npz", images=np.zeros((3, 32, 32, 3), np.uint8), y=np.arange(4))
    with pytest.raises(CnnlabError, match="3 images but 4 labels"):
        load_dataset(str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "nokeys.npz", foo=np.zeros(3))
    with pytest.raises(CnnlabError, match="no image array"):
        load_dataset(str(tmp_path / "nokeys.npz"))


def test_seeded_stratified_split(test_set):
    a = train_val_split(test_set, val_fraction=0.1, seed=3)
    b = train_val_split(test_set, val_fraction=0.1, seed=3)
    c = train_val_split(test_set, val_fraction=0.1, seed=4)
    assert len(a.train) == 9000 and len(a.test) == 1000
    assert torch.equal(a.test.x, b.test.x) and not torch.equal(a.test.x, c.test.x)
    assert torch.bincount(a.test.y, minlength=10).tolist() == [100] * 10  # stratified by class
    tr = {bytes(t.numpy()) for t in a.train.x[:500]}
    assert not any(bytes(t.numpy()) in tr for t in a.test.x[:500])  # disjoint


def test_loader_covers_each_image_once_per_epoch(test_set):
    data = test_set.subset(range(300))
    loader = TensorLoader(data, 64, shuffle=True, seed=1)
    seen = torch.cat([y for _, y in loader])
    assert len(seen) == 300 and loader.state_dict() == {"epoch": 1, "batch": 0, "seed": 1}
    assert torch.equal(torch.bincount(seen, minlength=10), torch.bincount(data.y, minlength=10))
    order1, order2 = loader.order(0), loader.order(1)
    assert not torch.equal(order1, order2) and torch.equal(order1, TensorLoader(data, 64, seed=1).order(0))


def test_loader_resumes_mid_epoch_with_identical_batches(test_set):
    data = test_set.subset(range(500))
    full = TensorLoader(data, 100, augment="crop4,flip,cutout8", seed=7)
    batches = [x for _ in range(2) for x, _ in full]
    part = TensorLoader(data, 100, augment="crop4,flip,cutout8", seed=7)
    it = iter(part)
    got = [next(it)[0] for _ in range(3)]
    state = dict(part.state_dict())
    resumed = TensorLoader(data, 100, augment="crop4,flip,cutout8", seed=7)
    resumed.load_state_dict(state)
    got += [x for x, _ in resumed] + [x for x, _ in resumed]
    assert len(got) == len(batches) and all(torch.equal(a, b) for a, b in zip(got, batches))


def test_augmentation_translates_and_flips_real_images(test_set):
    x = test_set.floats(slice(0, 64))
    gen = torch.Generator().manual_seed(0)
    flipped = augment_batch(x, Augment(flip=True), gen)
    same = [(f == o).all().item() for f, o in zip(flipped, x)]
    mirrored = [(f == o.flip(2)).all().item() for f, o in zip(flipped, x)]
    assert all(s or m for s, m in zip(same, mirrored)) and 10 < sum(mirrored) < 54
    shifted = augment_batch(x, Augment(crop_pad=4, pad_mode="zeros"), torch.Generator().manual_seed(1))
    assert shifted.shape == x.shape
    # every output is the input translated by some (dy, dx) in [-4, 4]^2 with zero fill
    for out, src in zip(shifted[:8], x[:8]):
        padded = torch.nn.functional.pad(src, (4, 4, 4, 4))
        assert any(torch.equal(out, padded[:, 4 + dy:36 + dy, 4 + dx:36 + dx])
                   for dy in range(-4, 5) for dx in range(-4, 5))
    cut = augment_batch(x, Augment(cutout=8), torch.Generator().manual_seed(2))
    changed = (cut != x).any(1).sum((1, 2))
    assert int(changed.max()) <= 64 and int(changed.float().mean()) > 10


def test_ddp_rank_slices_rebuild_the_global_batch(test_set):
    data = test_set.subset(range(256))
    one = TensorLoader(data, 64, augment="crop4,flip", seed=5)
    ranks = [TensorLoader(data, 64, augment="crop4,flip", seed=5, rank=r, world_size=2) for r in (0, 1)]
    for (x, y), (x0, y0), (x1, y1) in zip(one, ranks[0], ranks[1]):
        assert torch.equal(x[0::2], x0) and torch.equal(x[1::2], x1) and torch.equal(y[1::2], y1)


def test_augment_parse():
    assert Augment.parse("standard") == Augment(crop_pad=4, flip=True)
    assert str(Augment.parse("crop2,flip,cutout8")) == "crop2,flip,cutout8"
    assert not Augment.parse("none").active
    with pytest.raises(CnnlabError, match="Unknown augmentation 'rotate'"):
        Augment.parse("crop4,rotate")


def test_loader_resizes_for_bigger_models(test_set):
    data = ImageArrays(test_set.x[:8], test_set.y[:8], test_set.classes)
    x, _ = next(iter(TensorLoader(data, 8, shuffle=False, size=(64, 64))))
    assert x.shape == (8, 3, 64, 64) and 0 <= float(x.min()) and float(x.max()) <= 1
