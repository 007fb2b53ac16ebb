"""Every result object prints in a line or two (no tensor dumps), renders in Jupyter as a table of its
headline numbers and an inline PNG, and returns a matplotlib Figure from `.figure()`; and making all of
those figures leaves the user's matplotlib backend and pyplot figures alone."""
from __future__ import annotations

import html
import inspect

import matplotlib
import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.data import ImageArrays, Split
from cnnlab.results import MAX_REPR, Result

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def user_pyplot():
    """A notebook user's own pyplot state: a non-Agg backend and one open figure."""
    before = matplotlib.get_backend()
    matplotlib.use("pdf")
    import matplotlib.pyplot as plt
    fig = plt.figure()
    state = (matplotlib.get_backend(), list(plt.get_fignums()))
    yield state
    plt.close(fig)
    matplotlib.use(before)


@pytest.fixture(scope="module")
def results(user_pyplot, resnet20, resnet20_correct, cifar_lossless, tmp_path_factory):
    """One of each result object, made small."""
    from cnnlab import attacks, explain, transfer
    from cnnlab.train import evaluate, fit
    from cnnlab.train.config import TrainConfig
    from tests.conftest import shared
    torch.manual_seed(0)
    x, y = resnet20_correct
    x, y = x[:12], y[:12]
    xl, yl = cifar_lossless
    arrays = ImageArrays((xl[:64] * 255).round().to(torch.uint8), yl[:64], list(resnet20.labels), "lossless")
    adv = attacks.pgd(resnet20, x[:2], eps=4 / 255, steps=3)
    fool = attacks.deepfool(resnet20, x[:4], steps=5)
    feats = np.random.default_rng(0).normal(size=(40, 8)) + np.repeat(np.eye(8)[:4] * 4, 10, 0)
    labels = np.repeat(np.arange(4), 10)
    small = cnnlab.create_model("softmax_regression", num_classes=10)
    run = cnnlab.train(small, data=arrays, epochs=1, out=tmp_path_factory.mktemp("run") / "r", batch_size=32,
                       progress=False)
    photo = str(shared("seed_images/glow_imagenet_cat_285.png"))
    made = {
        "Predictions": resnet20.predict(x[:3], k=3),
        "FilePredictions": cnnlab.predict_files(resnet20, [photo], k=3),
        "GraphReport": cnnlab.inspect_model(resnet20),
        "AttackResult": adv,
        "RobustnessTable": attacks.transform_robustness(resnet20, adv, max_images=2),
        "AttackEval": attacks.attack_eval(resnet20, (x, y), "fgsm", eps=2 / 255),
        "RobustnessCurve": attacks.attack_eval(resnet20, (x, y), "fgsm", eps=[1 / 255, 4 / 255]),
        "MinimalPerturbation": attacks.minimal_perturbation(fool),
        "SpatialEval": attacks.spatial_eval(resnet20, x[:6], y[:6], rotations=3, translations=1),
        "TransferAttackResult": attacks.transfer_attack(resnet20, resnet20, x[:6], y[:6], steps=2),
        "PatchResult": attacks.adversarial_patch(resnet20, x[:6], 0, x_test=x[6:], steps=2),
        "FoolingResult": attacks.fooling_images(resnet20, [0, 1], steps=2),
        "Attribution": explain.attribute(resnet20, x[:2], method="gradcam"),
        "FeatureMaps": explain.feature_maps(resnet20, x[:1], k=3),
        "Filters": explain.filters(resnet20),
        "Visualization": explain.visualize(resnet20, explain.channel("layer3", 0), steps=2),
        "TopActivations": explain.top_activations(resnet20, x, "layer2", 0, k=3),
        "Run": run,
        "FitResult": fit(small, arrays, arrays.subset(range(16)), TrainConfig(epochs=1, batch_size=32), progress=False),
        "EvalResult": evaluate(resnet20, arrays),
        "ProbeResult": transfer.linear_probe((feats, labels), (feats, labels), C=1.0),
        "TransferResult": transfer.run_probe(resnet20, Split(arrays.subset(range(48)), arrays.subset(range(48, 64))),
                                             cache_dir=False, C=1.0),
    }
    return made


RESULT_TYPES = ["Predictions", "FilePredictions", "GraphReport", "AttackResult", "RobustnessTable", "AttackEval",
                "RobustnessCurve", "MinimalPerturbation", "SpatialEval", "TransferAttackResult", "PatchResult",
                "FoolingResult", "Attribution", "FeatureMaps", "Filters", "Visualization", "TopActivations", "Run",
                "FitResult", "EvalResult", "ProbeResult", "TransferResult"]


@pytest.mark.slow
@pytest.mark.parametrize("name", RESULT_TYPES)
def test_repr_html_and_figure(results, name):
    from matplotlib.figure import Figure
    r = results[name]
    assert type(r).__name__ == name and isinstance(r, Result)
    text = repr(r)
    assert 10 < len(text) <= MAX_REPR + 2 and "tensor(" not in text and "\n" not in text, text
    assert text.startswith(f"{name}(")
    page = r._repr_html_()
    rows = r.summary_rows()
    assert rows
    for key, value in rows:
        assert html.escape(str(key)) in page
    assert "<img src='data:image/png;base64," in page
    assert isinstance(r.figure(), Figure)


@pytest.mark.slow
def test_headline_numbers_are_in_the_html(results):
    ev = results["EvalResult"]
    assert f"{100 * ev.top1:.2f}%" in ev._repr_html_() and f"top1={100 * ev.top1:.2f}%" in repr(ev)
    ae = results["AttackEval"]
    assert f"{100 * ae.robust_top1:.2f}%" in ae._repr_html_()
    preds = results["Predictions"]
    assert preds[0][0].label.split(",")[0] in repr(preds) and isinstance(preds, list) and len(preds[0]) == 3


@pytest.mark.slow
def test_figures_leave_the_backend_and_pyplot_alone(results, user_pyplot):
    """After every result's figure (and its inline rendering) the user's backend and open figures are
    unchanged, so a notebook's own `plt.show()` still shows."""
    import matplotlib.pyplot as plt
    for r in results.values():
        r.figure()
    assert (matplotlib.get_backend(), list(plt.get_fignums())) == user_pyplot


def test_every_result_class_uses_the_one_repr():
    """No result class writes its own repr (a dataclass must say repr=False), so none dumps tensors."""
    import importlib
    import pkgutil

    from cnnlab.models import Predictions
    seen = set()
    for info in pkgutil.walk_packages(cnnlab.__path__, "cnnlab."):
        if info.name.split(".")[1] in ("cli", "interop", "serve", "__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Result) and cls is not Result and cls.__module__ == info.name:
                seen.add(cls.__name__)
                assert cls.__repr__ in (Result.__repr__, Predictions.__repr__), cls
    assert set(RESULT_TYPES) <= seen
