"""Models from other frameworks in, ONNX out, and the graph questions on any graph.

    from cnnlab.interop import load_model_file, export_onnx, inspect_model_file
    model = load_model_file("model.onnx")        # or .keras, .h5, a SavedModel dir, a TF1 .meta
    export_onnx(model, "again.onnx")             # dynamic batch, normalization inside, labels in metadata
    print(inspect_model_file("model.meta").summary())

A file becomes a PyTorch network (ONNX through onnx2torch; Keras and TensorFlow through tf2onnx, then
onnx2torch: see onnx_import.py and tensorflow_import.py for why these converters), wrapped by
`cnnlab.wrap`, so every verb works on it with gradients. The optional packages come with the
extras `cnnlab[onnx]` and `cnnlab[tensorflow]`; they are imported only when a file needs them.
"""
from ..models.labels import read_labels
from .conventions import INPUT_RANGES
from .model_file import FORMATS, from_keras, inspect_model_file, load_model_file, model_format
from .onnx_export import OnnxExport, export_onnx, run_onnxruntime

__all__ = ["INPUT_RANGES", "FORMATS", "OnnxExport", "export_onnx", "from_keras", "inspect_model_file",
           "load_model_file", "model_format", "read_labels", "run_onnxruntime"]
