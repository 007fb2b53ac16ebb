"""Penultimate features on real Pets photos: they separate breeds, the cache returns exactly what a fresh
extraction does, stale caches are rebuilt, bad images are skipped and counted."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.images import Preprocessing
from cnnlab.transfer import cache as fcache
from cnnlab.transfer import extract_features, linear_probe, probe_split
from cnnlab.transfer.fast import feature_function
from tests.conftest import shared


@pytest.fixture(scope="session")
def pets_split():
    return probe_split(shared("oxford_pets_subset.npz"))


@pytest.fixture(scope="session")
def pets_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def pets_features(lite0, pets_split, pets_cache):
    """EfficientNet-Lite0 features of the 370 real Pets photos (extracted once, cached on disk)."""
    return (extract_features(lite0, pets_split.train, cache_dir=pets_cache),
            extract_features(lite0, pets_split.test, cache_dir=pets_cache))


def test_npz_split_and_classes(pets_split):
    assert (len(pets_split.train), len(pets_split.test)) == (259, 111)
    assert len(pets_split.classes) == 37 and pets_split.classes[0] == "Abyssinian"
    assert np.bincount(pets_split.test.y).tolist() == [3] * 37


def test_features_are_penultimate_relu_outputs_l2_normalized(pets_features):
    train, test = pets_features
    assert train.features.shape == (259, 1280) and test.features.shape == (111, 1280)
    assert train.dim == 1280 and train.l2
    assert torch.allclose(train.features.norm(dim=1), torch.ones(259), atol=1e-5)
    assert train.features.min() >= 0  # taken after the ReLU6 and the average pool
    assert train.skipped == [] and train.cache_status in ("miss", "hit")


def test_imagenet_features_separate_breeds_far_better_than_pixels(pets_features, pets_split):
    train, test = pets_features
    probe = linear_probe(train, test, "logreg")
    pre = Preprocessing((16, 16), resize=16)  # the pixel baseline: the same photos as 16 x 16 thumbnails
    pix = [cnnlab.load_images([p.file(i) for i in range(len(p))], pre).flatten(1) for p in (pets_split.train, pets_split.test)]
    pix = [torch.nn.functional.normalize(x, dim=1).numpy() for x in pix]
    baseline = linear_probe((pix[0], pets_split.train.y), (pix[1], pets_split.test.y), "logreg",
                            classes=pets_split.classes, Cs=(1.0, 100.0, 10000.0))
    chance = 1 / 37
    assert probe.mean_class_accuracy > 0.7, probe.mean_class_accuracy
    assert baseline.mean_class_accuracy < 0.25
    assert probe.mean_class_accuracy > baseline.mean_class_accuracy + 0.45
    assert baseline.mean_class_accuracy > chance * 0.5  # the baseline is a real (weak) probe
    assert probe.n_train == 259 and probe.n_test == 111 and probe.feature_dim == 1280
    assert probe.cv_folds == 5 and len(probe.cv_scores) == 13


def test_cached_features_equal_fresh_ones(lite0, pets_features, pets_split, pets_cache):
    again = extract_features(lite0, pets_split.test, cache_dir=pets_cache)
    assert again.cache_status == "hit" and again.seconds < 2
    fresh = extract_features(lite0, pets_split.test, cache_dir=False)
    assert fresh.cache_status == "off"
    assert torch.equal(again.features, fresh.features)
    assert torch.equal(again.features, pets_features[1].features)
    np.testing.assert_array_equal(again.labels, pets_split.test.y)


def test_features_match_the_models_own_forward(lite0, pets_features, pets_split):
    """The fast path (BatchNorm folded) equals model.features on cnnlab.load_images to rounding."""
    part = pets_split.test
    x = cnnlab.load_images([part.file(i) for i in range(6)], lite0)
    with torch.inference_mode():
        ref = torch.nn.functional.normalize(lite0.features(x), dim=1)
    torch.testing.assert_close(pets_features[1].features[:6], ref, atol=2e-5, rtol=1e-4)
    raw = extract_features(lite0, part.subset(range(6)), cache_dir=False, l2=False, fast=False)
    torch.testing.assert_close(raw.features, lite0.features(x).detach(), atol=1e-5, rtol=1e-5)
    assert raw.features.norm(dim=1).min() > 2  # not normalized


@pytest.fixture()
def photo_folder(tmp_path, pets_split):
    """Two class folders of real photos plus a corrupt JPEG and an empty file."""
    part = pets_split.train
    for i in range(8):
        f = tmp_path / "photos" / part.classes[int(part.y[i * 30])] / f"{i}.jpg"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(part.file(i * 30))
    first = sorted((tmp_path / "photos").iterdir())[0]
    (first / "broken.jpg").write_bytes(part.file(0)[:300])
    (first / "empty.jpg").write_bytes(b"")
    return tmp_path / "photos"


def test_bad_images_are_skipped_and_counted(resnet20, photo_folder, tmp_path):
    files = sorted(str(p) for p in photo_folder.rglob("*.jpg"))
    feats = extract_features(resnet20, files, cache_dir=tmp_path / "c", workers=2)
    assert len(feats) == 8 and len(feats.skipped) == 2
    assert {n.rsplit("/", 1)[1] for n, _ in feats.skipped} == {"broken.jpg", "empty.jpg"}
    assert all("broken.jpg" not in n and "empty.jpg" not in n for n in feats.names)
    again = extract_features(resnet20, files, cache_dir=tmp_path / "c")
    assert again.cache_status == "hit" and again.skipped == feats.skipped and again.names == feats.names
    serial = extract_features(resnet20, files, cache_dir=False, workers=0)
    assert torch.equal(serial.features, feats.features)
    with pytest.raises(CnnlabError, match="could be decoded"):
        extract_features(resnet20, [n for n, _ in feats.skipped], cache_dir=False)


def test_cache_from_another_model_version_is_rebuilt(resnet20, photo_folder, tmp_path, monkeypatch):
    files = sorted(str(p) for p in photo_folder.rglob("*.jpg"))[:4]
    cache = tmp_path / "c"
    first = extract_features(resnet20, files, cache_dir=cache)
    assert first.cache_status == "miss"
    other = copy.deepcopy(resnet20)
    with torch.no_grad():
        other.net.layer3[2].conv2.weight.mul_(1.5)  # the same architecture and name, other weights
    changed = extract_features(other, files, cache_dir=cache)
    assert changed.cache_status == "rebuilt" and "model version" in changed.cache_note
    assert changed.cache_path == first.cache_path
    assert not torch.allclose(changed.features, first.features)
    assert extract_features(other, files, cache_dir=cache).cache_status == "hit"
    monkeypatch.setattr(fcache, "FEATURE_CODE_VERSION", fcache.FEATURE_CODE_VERSION + 1)
    newer = extract_features(other, files, cache_dir=cache)
    assert newer.cache_status == "rebuilt" and "code version" in newer.cache_note
    torch.testing.assert_close(newer.features, changed.features)
    (photo_folder / sorted(p.name for p in photo_folder.iterdir())[0] / "new.jpg").write_bytes(
        open(files[0], "rb").read())
    files2 = sorted(str(p) for p in photo_folder.rglob("*.jpg"))[:4]
    assert extract_features(other, files2, cache_dir=cache).cache_status in ("miss", "hit")


def test_fast_path_equals_plain_features_on_a_torchvision_resnet():
    model = cnnlab.create_model("resnet18", num_classes=5).eval()  # random weights: no download
    fn, how = feature_function(model)
    assert "twin" in how
    x = torch.rand(3, 3, 48, 48)
    with torch.inference_mode():
        torch.testing.assert_close(fn(x), model.features(x), atol=1e-4, rtol=1e-4)
    assert fn(x).shape == (3, 512)


@pytest.mark.device
def test_in_memory_arrays_are_extracted_too(resnet20, cifar_lossless, device):
    x, y = cifar_lossless
    from cnnlab.data.base import ImageArrays
    data = ImageArrays((x[:40] * 255).round().to(torch.uint8), y[:40], [str(i) for i in range(10)], "cifar")
    feats = extract_features(resnet20, data, cache_dir=False, batch_size=16)
    assert feats.features.shape == (40, 64) and feats.labels.tolist() == y[:40].tolist()
    assert resnet20.device == device and feats.features.device.type == "cpu"
    with torch.inference_mode():
        ref = torch.nn.functional.normalize(resnet20.features(data.floats()), dim=1).cpu()
    tol = 1e-4 if device.type == "cpu" else 2e-3  # a GPU's convolutions round differently (TF32)
    torch.testing.assert_close(feats.features, ref, atol=tol / 10, rtol=tol)


def test_untraceable_or_hooked_models_use_their_own_features(resnet20):
    from torch import nn

    from cnnlab.models.classifier import Classifier

    class Branchy(nn.Module):  # data-dependent control flow: torch.fx cannot trace it
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn, self.fc = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 2)

        def forward(self, x):
            h = self.bn(self.conv(x)).relu()
            if h.mean() > 0:
                h = h * 2
            return self.fc(h.mean((2, 3)))

    model = Classifier(Branchy().eval(), ["a", "b"], preprocessing=Preprocessing((16, 16), None), head="fc")
    fn, how = feature_function(model)
    assert how.startswith("plain") and "traced" in how
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(fn(x), model.features(x))
    handle = resnet20.layer("late").register_forward_hook(lambda m, i, o: None)
    try:
        assert "hooked" in feature_function(resnet20)[1]
    finally:
        handle.remove()
    assert "twin" in feature_function(resnet20)[1]


def test_npz_of_decoded_arrays_and_bad_npz_files(tmp_path, cifar_lossless, resnet20):
    x, y = cifar_lossless
    arr = (x[:60] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "small.npz", x=arr, y=y[:60].numpy())
    split = probe_split(tmp_path / "small.npz", test_fraction=0.25, seed=1)
    assert len(split.train) + len(split.test) == 60 and 12 <= len(split.test) <= 18
    assert split.classes == [f"class {i}" for i in range(10)]  # the file names none: never guessed
    feats = extract_features(resnet20, split.test, cache_dir=False)
    assert feats.features.shape == (len(split.test), 64)
    np.savez(tmp_path / "nolabels.npz", x=arr)
    with pytest.raises(CnnlabError, match="unlabelled images"):
        probe_split(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "noimages.npz", y=y[:60].numpy())
    with pytest.raises(CnnlabError, match="holds no image"):
        probe_split(tmp_path / "noimages.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CnnlabError, match="not a readable .npz"):
        probe_split(tmp_path / "junk.npz")
    with pytest.raises(CnnlabError, match="not an .npz"):
        probe_split(__file__)
