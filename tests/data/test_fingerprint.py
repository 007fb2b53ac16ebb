"""Which images: per-image hashes and set fingerprints of every dataset shape, on real CIFAR-10 and Pets."""
from __future__ import annotations

import numpy as np

from cnnlab.data import ImageFiles, open_dataset, train_val_split
from cnnlab.data.fingerprint import describe_images, image_hashes, set_fingerprint, shared_images
from tests.conftest import shared


def test_hashes_follow_the_pixels_not_the_order(test_set):
    part = test_set.subset(range(0, 10000, 50))
    h = image_hashes(part)
    assert h.dtype == np.uint64 and len(np.unique(h)) == 200
    assert np.array_equal(image_hashes(part.subset(range(199, -1, -1))), h[::-1])
    assert set_fingerprint(h) == set_fingerprint(h[::-1]) != set_fingerprint(h[1:])
    d = describe_images(part, h)
    assert d["n"] == 200 and len(d["fingerprint"]) == 16


def test_a_validation_split_shares_no_image_with_its_training_part(test_set):
    split = train_val_split(test_set.subset(range(0, 10000, 10)), None, 0.1, seed=0)
    train, val = image_hashes(split.train), image_hashes(split.test)
    assert not shared_images(val, train).any()
    assert shared_images(image_hashes(test_set.subset(range(0, 10000, 10))), train).sum() == len(train)


def test_encoded_photos_and_files_hash_too(tmp_path):
    pets = open_dataset(shared("oxford_pets_subset.npz"), decode=False)
    h = image_hashes(pets.test)
    assert len(np.unique(h)) == len(pets.test) == 111
    for i in range(3):
        (tmp_path / f"{i}.jpg").write_bytes(pets.test.file(i))
    files = ImageFiles([str(tmp_path / f"{i}.jpg") for i in range(3)], np.zeros(3, np.int64), ["a"])
    again = ImageFiles([str(tmp_path / ".." / tmp_path.name / f"{i}.jpg") for i in range(3)], np.zeros(3, np.int64), ["a"])
    assert np.array_equal(image_hashes(files), image_hashes(again))  # the same files by another path


def test_an_empty_held_out_part_has_no_hashes_and_trains(test_set, tmp_path):
    """Two images per class hold none out at 10%: the run trains and records an empty validation set."""
    import cnnlab

    labels = np.asarray(test_set.y)
    few = test_set.subset(np.concatenate([np.flatnonzero(labels == c)[:2] for c in range(10)]))
    split = train_val_split(few, None, 0.1, seed=0)
    assert len(split.test) == 0 and image_hashes(split.test).shape == (0,)
    run = cnnlab.train("cifar_resnet20", data=few, epochs=1, out=tmp_path / "run", progress=False,
                       batch_size=10, data_init=False)
    assert run.config["data"]["val"]["n"] == 0 and run.config["data"]["train"]["n"] == 20
