"""Class names: ImageNet's shipped, those of the dataset published weights were trained on, and
`class i` where nobody named them (never guessed from the number of classes)."""
from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.models.imagenet import imagenet_labels, imagenet_synsets, synset_index
from cnnlab.models.labels import CIFAR10, class_names, dataset_classes, read_labels


def test_imagenet_names_and_synsets_shipped():
    labels, synsets = imagenet_labels(), imagenet_synsets()
    assert len(labels) == len(synsets) == 1000
    assert labels[340] == "zebra" and labels[859] == "toaster" and synsets[340] == "n02391049"
    assert synset_index("n02391049") == 340


def test_untrained_heads_are_never_named_after_a_dataset():
    assert class_names(10) == [f"class {i}" for i in range(10)]
    assert class_names(100)[99] == "class 99" and class_names(1000) == imagenet_labels()
    assert dataset_classes("cifar10") == CIFAR10 and len(dataset_classes("cifar100")) == 100
    with pytest.raises(CnnlabError, match="cifar10"):
        dataset_classes("cifar-10")
    for name, n in [("cifar_resnet20", 10), ("course_resnet", 100), ("simple_cnn", 10)]:
        assert cnnlab.create_model(name).labels == class_names(n)
    assert cnnlab.create_model("cifar_resnet20", num_classes=37).labels[36] == "class 36"


def test_labelled_array_file_without_names_gets_class_i(tmp_path):
    from cnnlab.data import load_array_file
    x = np.zeros((12, 8, 8, 3), np.uint8)
    for n in (10, 37, 100):  # 10 and 100 classes used to be named after CIFAR
        np.savez(tmp_path / f"d{n}.npz", x=x, y=np.arange(12) % n if n < 12 else np.r_[np.arange(11), n - 1])
        data = load_array_file(tmp_path / f"d{n}.npz")
        assert data.classes == [f"class {i}" for i in range(n)]
    np.savez(tmp_path / "named.npz", x=x, y=np.arange(12) % 3, classes=np.array(["cat", "dog", "pet"]))
    assert load_array_file(tmp_path / "named.npz").classes == ["cat", "dog", "pet"]


def test_labels_files(tmp_path):
    (tmp_path / "a.txt").write_text("cat\ndog\n\n")
    (tmp_path / "b.json").write_text('["cat", "dog"]')
    (tmp_path / "c.json").write_text('{"1": ["n02", "dog"], "0": ["n01", "cat"]}')
    assert read_labels(tmp_path / "a.txt") == read_labels(tmp_path / "b.json") == read_labels(tmp_path / "c.json") \
        == ["cat", "dog"]
    assert read_labels(["a", "b"]) == ["a", "b"] and read_labels(None) is None
    with pytest.raises(CnnlabError, match="does not exist"):
        read_labels(tmp_path / "nope.txt")
