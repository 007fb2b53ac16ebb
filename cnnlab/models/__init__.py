"""Models: the Classifier, the model families (each with its configurations and training recipe) and a
registry by name. Importing the package registers every family (about 20 ms, next to torch's 2 s)."""
from .arguments import ModelArgument
from .classifier import Classifier, Prediction, Predictions
from .configs import DataInit, ModelCfg
from .registry import (ModelEntry, create_model, data_init, get_entry, list_models, load_model, model_arguments,
                       recipe, register_model, register_prefix)
from .wrap import as_classifier, wrap

from . import airbench, cifar_resnet, course, efficientnet_lite, zoo  # noqa: E402,F401  (register the families)

__all__ = ["Classifier", "Prediction", "Predictions", "ModelEntry", "ModelCfg", "DataInit", "ModelArgument",
           "create_model", "get_entry", "list_models", "load_model", "model_arguments", "recipe", "data_init",
           "register_model", "register_prefix",
           "wrap", "as_classifier"]
