"""The contract every registered model keeps (timm's test over every model), with no network and no
weights: it builds, answers at its input size, names spatial feature layers, gives a penultimate
embedding of the head's width, is its own Classifier, rebuilds from its checkpoint metadata, and
takes one attack step and one attribution. The big torchvision nets run at 64 px (their Classifier
takes any size) and are marked slow."""
from __future__ import annotations

import pytest
import torch

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.models import Classifier, as_classifier, get_entry, list_models
from cnnlab.models.labels import class_names

#: Nets that take a few seconds each to build or run on a busy 2-core machine.
SLOW = {"alexnet", "vgg16", "vgg19", "vgg16_bn", "resnet101", "resnet152", "wide_resnet50_2", "inception_v3",
        "densenet121", "convnext_tiny", "resnet50", "googlenet", "efficientnet_b0", "regnet_y_400mf",
        "mobilenet_v3_large", "shufflenet_v2_x1_0", "cifar_resnet110", "resnet34"}
#: Smallest input at which a net still runs (Inception v3's stem needs 75 px).
SMALL = {"inception_v3": 80}
NAMES = [e.name for e in list_models()]


def _size(model: Classifier) -> int:
    return min(model.input_size[0], SMALL.get(model.name, 64))


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in NAMES])
def test_every_registered_model_keeps_the_contract(name, one_thread, monkeypatch):
    torch.manual_seed(0)
    entry = get_entry(name)
    model = cnnlab.create_model(name)  # untrained: no download, no file
    assert isinstance(model, Classifier) and as_classifier(model) is model and not model.training
    assert model.name == name and model.num_classes == entry.default_classes
    assert model.labels == class_names(model.num_classes) and model.input_size == entry.cfg.input_size
    x = torch.rand(1, 3, _size(model), _size(model), generator=torch.Generator().manual_seed(0))

    maps: dict[str, torch.Tensor] = {}
    hooks = [model.layer(n).register_forward_hook(lambda m, i, o, n=n: maps.update({n: o}))
             for n in model.layers()]
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    assert logits.shape == (1, model.num_classes) and torch.isfinite(logits).all()
    assert list(maps) == list(model.layers()) and all(m.dim() == 4 for m in maps.values()), \
        {n: tuple(m.shape) for n, m in maps.items()}

    if model.head_name is not None:
        with torch.no_grad():
            assert model.features(x).shape == (1, model.head().in_features)
    else:  # SqueezeNet classifies with a convolution: there is no linear head to take the input of
        with pytest.raises(CnnlabError, match="no named classification head"):
            model.features(x)

    meta = model.checkpoint_meta()
    kwargs = {k: v for k, v in meta["spec"]["kwargs"].items() if k != "num_classes"}
    with monkeypatch.context() as patch:  # the rebuilt net's weights are loaded below: skip drawing them
        for fn in [f for f in dir(torch.nn.init) if f.endswith("_") and not f.startswith("_")]:
            patch.setattr(torch.nn.init, fn, lambda tensor, *args, **kw: tensor)
        again = cnnlab.create_model(meta["spec"]["name"], labels=meta["labels"], **kwargs)
    again.net.load_state_dict(model.net.state_dict())
    assert again.checkpoint_meta() == meta
    with torch.no_grad():
        assert torch.allclose(again(x), logits, atol=1e-5)

    adv = cnnlab.attacks.fgsm(model, x, eps=2 / 255)
    assert adv.images.shape == x.shape and float((adv.images - x).abs().max()) <= 2 / 255 + 1e-6
    attr = cnnlab.explain.attribute(model, x, method="gradient")
    assert attr.attributions.shape == x.shape and torch.isfinite(attr.attributions).all()


def test_every_recipe_is_a_training_configuration():
    from cnnlab.train import TrainConfig
    for entry in list_models():
        cfg = TrainConfig.from_dict({"model": entry.name, **entry.recipe})  # unknown options would raise here
        assert all(getattr(cfg, k) == v or k == "tta" for k, v in entry.recipe.items())
        assert all(a.help for a in entry.arguments()), f"{entry.name}: document every argument in its docstring"
