"""Transfer learning: penultimate-layer features of any Classifier, cached; linear probes on them.

    from cnnlab.transfer import run_probe
    result = run_probe("efficientnet_lite0", "pets", data_dir="~/data")   # features + logreg probe
    result.probe.mean_class_accuracy, result.probe.figure("confusion.png")

Underneath: `probe_split(spec)` -> Split (through cnnlab.data's resolver), `extract_features(model,
part)` -> FeatureSet, `linear_probe(train, test, "logreg" | "svm")` -> ProbeResult; `finetune(...)`
calls the trainer.
"""
from .features import FeatureSet, compute_features, extract_features, l2_normalize
from .probe import ProbeResult, linear_probe
from .run import TransferResult, finetune, probe_split, run_probe

__all__ = ["FeatureSet", "compute_features", "extract_features", "l2_normalize", "ProbeResult", "linear_probe",
           "TransferResult", "finetune", "probe_split", "run_probe"]
