"""Transfer learning: penultimate-layer features of any Classifier, cached; linear probes on them.

    from cnnlab.transfer import run_probe
    result = run_probe("efficientnet_lite0", "pets", data_dir="~/data")   # features + logreg probe
    result.probe.mean_per_class_accuracy, result.probe.figure("confusion.png")

Underneath: `load_transfer_data(spec)` -> Split, `extract_features(model, part)` -> FeatureSet,
`linear_probe(train, test, "logreg" | "svm")` -> ProbeResult; `finetune(...)` calls the trainer.
"""
from .data import EncodedImages, load_npz_split, load_transfer_data
from .features import FeatureSet, compute_features, extract_features, l2_normalize
from .probe import ClassificationMetrics, ProbeResult, classification_metrics, linear_probe
from .run import TransferResult, finetune, run_probe

__all__ = ["EncodedImages", "FeatureSet", "compute_features", "extract_features", "l2_normalize",
           "load_npz_split", "load_transfer_data", "ClassificationMetrics", "ProbeResult",
           "classification_metrics", "linear_probe", "TransferResult", "finetune", "run_probe"]
