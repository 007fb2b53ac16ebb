"""Datasets: CIFAR-10/100, .npz/.npy arrays, image folders (MiniPlaces, Oxford Pets), and loaders.

    from cnnlab.data import load_dataset, train_val_split, TensorLoader
    split = train_val_split("cifar10", val_fraction=0.1, seed=0)       # seeded 90/10
    loader = TensorLoader(split.train, 128, augment="crop4,flip", seed=0)
"""
from .arrays import load_array_file
from .base import Dataset, ImageArrays, ImageFiles, Split, seeded_split
from .datasets import check_labels, dataset_names, load_dataset, train_val_split
from .loader import Augment, StreamLoader, TensorLoader, augment_batch, make_loader

__all__ = ["Dataset", "ImageArrays", "ImageFiles", "Split", "seeded_split", "load_array_file", "load_dataset",
           "train_val_split", "check_labels", "dataset_names", "Augment", "TensorLoader", "StreamLoader",
           "augment_batch", "make_loader"]
