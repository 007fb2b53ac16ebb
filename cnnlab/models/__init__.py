"""Models: the Classifier, the model families (each with its configurations and training recipe) and a
registry by name."""
from .arguments import ModelArgument
from .classifier import Classifier, Prediction
from .configs import DataInit, ModelCfg
from .registry import (ModelEntry, create_model, data_init, get_entry, list_models, load_model, model_arguments,
                       recipe, register_model)
from .wrap import as_classifier, wrap

__all__ = ["Classifier", "Prediction", "ModelEntry", "ModelCfg", "DataInit", "ModelArgument", "create_model",
           "get_entry", "list_models", "load_model", "model_arguments", "recipe", "data_init", "register_model",
           "wrap", "as_classifier"]
