"""Datasets: CIFAR-10/100, .npz/.npy arrays, image folders (MiniPlaces, Oxford Pets), and loaders."""
from .base import Dataset, ImageArrays, ImageFiles, Split, seeded_split

__all__ = ["Dataset", "ImageArrays", "ImageFiles", "Split", "seeded_split"]
