"""Datasets: CIFAR-10/100, Oxford-IIIT Pets, MiniPlaces, .npz/.npy arrays and image folders, resolved by
one function, and the loaders that batch them.

    from cnnlab.data import load_dataset, open_dataset, train_val_split, TensorLoader
    split = train_val_split("cifar10", val_fraction=0.1, seed=0)       # seeded, stratified 90/10
    loader = TensorLoader(split.train, 128, augment="crop4,flip", seed=0)
    pets = open_dataset("pets")                                        # Split(train, test) of photo files
    toy = shapes(2000, size=32)                                        # ten classes made on the spot, offline
    load_dataset(TensorDataset(x, y))       # a user's own data: in memory (a DataLoader: used as given)
"""
from .arrays import load_array_file, read_array_file, unnamed_classes
from .base import (DATASET_TYPES, Dataset, EncodedImages, GivenLoader, ImageArrays, ImageFiles, Split, concat,
                   seeded_split, seeded_subset, signature)
from .datasets import (NAMED, check_labels, dataset_names, load_dataset, name_classes, open_dataset,
                       train_val_split)
from .given import from_user
from .loader import Augment, GivenBatches, StreamLoader, TensorLoader, augment_batch, make_loader
from .shapes import SHAPE_CLASSES, shapes
from .tensors import image_batches, image_tensors, select_images

__all__ = ["DATASET_TYPES", "Dataset", "ImageArrays", "ImageFiles", "EncodedImages", "GivenLoader", "GivenBatches",
           "from_user", "Split", "concat", "seeded_split", "seeded_subset", "signature",
           "read_array_file", "load_array_file", "unnamed_classes", "NAMED",
           "open_dataset", "load_dataset", "train_val_split", "check_labels", "dataset_names", "name_classes",
           "select_images", "image_batches", "image_tensors", "Augment", "TensorLoader", "StreamLoader",
           "augment_batch", "make_loader", "shapes", "SHAPE_CLASSES"]
