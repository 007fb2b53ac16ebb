"""torchvision's ImageNet classifiers by name (and timm's, as `timm/NAME`, when timm is installed).

Weights come through torchvision's normal download into torch.hub's cache; offline, the error names
the file, the cache directory and how to put the file there. Input size, resize/crop and
normalization are read from the weights' own transforms, so preprocessing always matches.
"""
from __future__ import annotations

from torch import nn

from ..errors import CnnlabError
from ..images import Preprocessing
from .classifier import IMAGENET_MEAN, IMAGENET_STD, Classifier
from .imagenet import imagenet_labels
from .labels import default_labels
from .registry import register_model
from .weights import download, hub_cache_dir
from .wrap import guess_layers

TORCHVISION_MODELS = {
    "alexnet": "AlexNet (2012), 61M params",
    "vgg16": "VGG-16 (2014), 138M params", "vgg19": "VGG-19 (2014), 144M params",
    "vgg16_bn": "VGG-16 with BatchNorm", "googlenet": "GoogLeNet / Inception v1 (2014)",
    "inception_v3": "Inception v3, 299 px", "resnet18": "ResNet-18 (2015)", "resnet34": "ResNet-34",
    "resnet50": "ResNet-50", "resnet101": "ResNet-101", "resnet152": "ResNet-152",
    "densenet121": "DenseNet-121", "mobilenet_v2": "MobileNetV2", "mobilenet_v3_small": "MobileNetV3-Small",
    "mobilenet_v3_large": "MobileNetV3-Large", "efficientnet_b0": "EfficientNet-B0",
    "convnext_tiny": "ConvNeXt-Tiny", "regnet_y_400mf": "RegNetY-400MF", "squeezenet1_1": "SqueezeNet 1.1",
    "shufflenet_v2_x1_0": "ShuffleNetV2 1.0x", "wide_resnet50_2": "Wide ResNet-50-2",
}


def _weights_enum(name: str):
    import torchvision.models as tvm
    return tvm.get_model_weights(name).DEFAULT


def _build(name: str, pretrained: bool, num_classes: int | None) -> Classifier:
    import torchvision.models as tvm
    weights = _weights_enum(name) if pretrained else None
    kwargs = {}
    if weights is not None:
        download(weights.url, f"torchvision {name}")  # clear offline error before torchvision tries
    elif name in ("googlenet", "inception_v3"):
        kwargs = {"aux_logits": False, "init_weights": True}
    net = tvm.get_model(name, weights=weights, **kwargs)
    feats, head = guess_layers(net)
    labels = imagenet_labels()
    if num_classes and num_classes != 1000:
        parent, _, attr = head.rpartition(".")
        holder = net.get_submodule(parent) if parent else net
        old = getattr(holder, attr)
        setattr(holder, attr, nn.Linear(old.in_features, num_classes))
        labels = default_labels(num_classes)
    if weights is not None:
        t = weights.transforms()
        pre = Preprocessing((t.crop_size[0], t.crop_size[0]), t.resize_size[0], t.interpolation.value)
        mean, std = tuple(t.mean), tuple(t.std)
    else:
        size = 299 if name == "inception_v3" else 224
        pre, mean, std = Preprocessing((size, size), 342 if size == 299 else 256), IMAGENET_MEAN, IMAGENET_STD
    return Classifier(net, labels, preprocessing=pre, mean=mean, std=std, feature_layers=feats, head=head,
                      spec={"name": name, "kwargs": {}},
                      weights_name=weights.url.rsplit("/", 1)[-1] if weights is not None else None)


def _cached(name: str):
    def probe() -> bool:
        try:
            return (hub_cache_dir() / _weights_enum(name).url.rsplit("/", 1)[-1]).exists()
        except Exception:  # noqa: BLE001
            return False
    return probe


for _name, _desc in TORCHVISION_MODELS.items():
    register_model(_name, family="imagenet", pretrained="download", default_classes=1000,
                   description=f"{_desc} (torchvision)", cached_weights=_cached(_name)
                   )(lambda pretrained=False, num_classes=None, _n=_name: _build(_n, pretrained, num_classes))


def timm_model(name: str, pretrained: bool = False, num_classes: int | None = None) -> Classifier:
    """A timm model (needs `pip install timm`; weights from the Hugging Face hub when online)."""
    try:
        import timm
        from timm.data import resolve_data_config
    except ImportError:
        raise CnnlabError(f"Model 'timm/{name}' needs timm: `pip install timm`.") from None
    try:
        net = timm.create_model(name, pretrained=pretrained, num_classes=num_classes or 1000)
    except Exception as e:  # noqa: BLE001 - download or name errors from timm
        raise CnnlabError(f"timm could not create '{name}' ({str(e).splitlines()[0][:150]}); "
                          "check the name (timm.list_models()) and the network.") from None
    cfg = resolve_data_config({}, model=net)
    size = cfg["input_size"][1:]
    pre = Preprocessing(tuple(size), int(round(size[0] / cfg.get("crop_pct", 0.875))), cfg.get("interpolation", "bilinear"))
    feats, head = guess_layers(net)
    return Classifier(net, imagenet_labels() if (num_classes or 1000) == 1000 else default_labels(num_classes),
                      preprocessing=pre, mean=cfg["mean"], std=cfg["std"], feature_layers=feats, head=head,
                      spec={"name": f"timm/{name}", "kwargs": {}})
