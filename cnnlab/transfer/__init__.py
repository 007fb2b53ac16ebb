"""Transfer learning: penultimate-layer features of any Classifier, and linear probes on them."""
from .data import EncodedImages, load_npz_split, load_transfer_data
from .features import FeatureSet, compute_features, extract_features, l2_normalize

__all__ = ["EncodedImages", "FeatureSet", "compute_features", "extract_features", "l2_normalize",
           "load_npz_split", "load_transfer_data"]
