"""Fixtures of the data tests: the real CIFAR-10 test set from ../shared/data, read once."""
from __future__ import annotations

import pytest

from cnnlab.data import load_dataset
from tests.conftest import shared


@pytest.fixture(scope="session")
def test_set():
    """The 10,000 JPEG-75 CIFAR-10 test images as ImageArrays (sorted by class)."""
    return load_dataset(str(shared("cifar10_test.npz")))
