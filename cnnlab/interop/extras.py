"""The optional packages that reading and writing other frameworks' files needs, imported on first use.

`pip install 'cnnlab[onnx]'` brings onnx, onnxruntime and onnx2torch; `pip install 'cnnlab[tensorflow]'`
brings TensorFlow (CPU) and tf2onnx. Without them the error names the extra to install.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from types import ModuleType

from ..errors import CnnlabError, brief

#: the extra that provides each optional module
EXTRA_OF = {"onnx": "onnx", "onnxruntime": "onnx", "onnx2torch": "onnx",
            "tensorflow": "tensorflow", "tf2onnx": "tensorflow", "keras": "tensorflow"}


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional package, or say which cnnlab extra brings it (one sentence)."""
    if module in ("tensorflow", "tf2onnx", "keras"):
        prepare_tensorflow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation chatter of the converters' own imports
            return importlib.import_module(module)
    except ImportError as e:
        extra = EXTRA_OF.get(module, module)
        raise CnnlabError(f"{purpose} needs the optional package '{module}' ({type(e).__name__}: "
                          f"{brief(e, 80)}); install it with: pip install 'cnnlab[{extra}]'.") from None


def prepare_tensorflow() -> None:
    """Load what must precede TensorFlow in one process, and quiet TensorFlow's start-up log.

    TensorFlow and Triton (which torch and torchvision load) each bundle LLVM: loading TensorFlow
    first and Triton second crashes the process (measured with tensorflow-cpu 2.21 and triton 3.8),
    while the other order works. So Triton is loaded first whenever it is installed.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "triton" not in sys.modules and importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")


def tensorflow(purpose: str) -> ModuleType:
    """TensorFlow, imported safely (see `prepare_tensorflow`), with its Python logging quietened."""
    tf = require("tensorflow", purpose)
    tf.get_logger().setLevel("ERROR")
    return tf
