"""Models: the Classifier, our CIFAR and course networks, the pretrained zoo, a registry by name."""
from .classifier import Classifier, Prediction
from .registry import ModelEntry, create_model, get_entry, list_models, load_model, register_model
from .wrap import as_classifier, wrap

__all__ = ["Classifier", "Prediction", "ModelEntry", "create_model", "get_entry", "list_models",
           "load_model", "register_model", "wrap", "as_classifier"]
