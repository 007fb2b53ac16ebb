"""EfficientNet-Lite0 with its bundled ImageNet weights: real predictions on real photos."""
from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab.errors import CnnlabError
from tests.conftest import shared

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_chelsea_gets_a_cat_class_in_top3(lite0, chelsea):
    top = lite0.predict(chelsea, k=3)[0]
    assert CAT_CLASSES & {p.index for p in top}
    assert top[0].index in CAT_CLASSES and top[0].label == lite0.labels[top[0].index]
    assert sum(p.prob for p in top) <= 1.0 + 1e-6 and top[0].prob >= top[1].prob >= top[2].prob


def test_zebra_image_is_340(lite0):
    x = cnnlab.load_images(shared("seed_images/glow_imagenet_zebra_340.png"), lite0)
    assert x.shape == (1, 3, 224, 224)
    probs = lite0.probabilities(x)[0]
    assert int(probs.argmax()) == 340 and lite0.labels[340] == "zebra"
    assert float(probs[340]) > 0.5  # very peaked at index 340


def test_peppers_photo_is_bell_pepper(lite0):
    x = cnnlab.load_images(shared("seed_images/peppers_color.png"), lite0)
    assert lite0.predict(x, k=3)[0][0].label == "bell pepper"


def test_lite0_top1_on_imagenet_samples_in_manifest_range(lite0):
    d = np.load(shared("imagenet_samples_256_even.npz"))
    idx = np.random.default_rng(0).permutation(len(d["label"]))[:100]
    blobs = [d["jpeg"][d["offsets"][i]:d["offsets"][i + 1]].tobytes() for i in idx]
    x = cnnlab.load_images(blobs, lite0)
    pred = lite0.probabilities(x).argmax(1).numpy()
    acc = float((pred == d["label"][idx]).mean())
    # the manifest reports ~87% on all 500 photos; a wrong crop, normalization or padding costs 10+ points
    assert 0.78 <= acc <= 0.97, acc


def test_class_index_by_name_synset_and_number(lite0):
    assert lite0.class_index("zebra") == 340 == lite0.class_index("n02391049") == lite0.class_index("340")
    with pytest.raises(CnnlabError, match="toaster"):
        lite0.class_index("toastr")
