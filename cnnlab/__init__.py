"""cnnlab: a workbench for convolutional image classifiers.

    import cnnlab
    model = cnnlab.create_model("efficientnet_lite0", pretrained=True)   # offline, bundled weights
    x = cnnlab.load_images(["cat.jpg"], model)                           # [1,3,224,224] in [0,1]
    model.predict(x, k=3)

Submodules (attacks, explain, train, transfer, reference, data, ...) and the functions above are
imported on first use so that `import cnnlab` stays fast.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

# Idle OpenMP threads that spin steal the cores a busy machine's working thread needs: measured on
# 2 cores under load, one EfficientNet-Lite0 forward took 0.7-1.4 s spinning vs 0.07 s passive.
# Only takes effect if torch is not imported yet; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_LAZY = {
    "create_model": ("cnnlab.models", "create_model"),
    "load_model": ("cnnlab.models", "load_model"),
    "list_models": ("cnnlab.models", "list_models"),
    "Classifier": ("cnnlab.models", "Classifier"),
    "wrap": ("cnnlab.models", "wrap"),
    "as_classifier": ("cnnlab.models", "as_classifier"),
    "resolve_device": ("cnnlab.devices", "resolve_device"),
    "load_images": ("cnnlab.images", "load_images"),
    "load_image": ("cnnlab.images", "load_image"),
    "save_image": ("cnnlab.images", "save_image"),
    "bundled_photo": ("cnnlab.images", "bundled_photo"),
    "CnnlabError": ("cnnlab.errors", "CnnlabError"),
    "inspect_model": ("cnnlab.graph", "inspect_model"),
    "predict_files": ("cnnlab.predictions", "predict_files"),
    "load_model_file": ("cnnlab.interop", "load_model_file"),
    "export_onnx": ("cnnlab.interop", "export_onnx"),
}
_SUBMODULES = {"attacks", "explain", "transfer", "reference", "data", "models", "images", "report", "runs",
               "graph", "predictions", "serve", "train", "interop"}  # cnnlab.train is a callable module: cnnlab.train("cifar_resnet20", ...)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"cnnlab.{name}")
    else:
        raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, *_SUBMODULES])
