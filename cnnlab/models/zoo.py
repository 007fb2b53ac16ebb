"""torchvision's ImageNet classifiers by name (and timm's, as `timm/NAME`, when timm is installed).

Each name's published weights are torchvision's DEFAULT weights, configured below as torchvision's
own transforms state them (input size, resize, interpolation, mean/std; tests/models check the table
against torchvision). Weights come through torchvision's normal download into torch.hub's cache;
offline, the error names the file, the cache directory and how to put the file there.

A timm model's weights are read from the Hugging Face cache when they are there (no network at all);
otherwise a 3-second check that the hub answers comes first, so that offline the error names the
file to fetch at once instead of after the hub client's retries (about 40 s).
"""
from __future__ import annotations

import os

from torch import nn

from ..errors import CnnlabError
from .classifier import Classifier
from .configs import ModelCfg, build_classifier
from .registry import ModelEntry, register_model, register_prefix
from .weights import download
from .wrap import guess_layers, wrap

_TORCHVISION = "https://download.pytorch.org/models/"
_SOURCE = "torchvision (BSD-3-Clause)"

#: name -> (description, weights file, head module, resize (short side), input size, interpolation)
TORCHVISION_MODELS = {
    "alexnet": ("AlexNet (2012), 61M params", "alexnet-owt-7be5be79.pth", "classifier.6", 256, 224, "bilinear"),
    "vgg16": ("VGG-16 (2014), 138M params", "vgg16-397923af.pth", "classifier.6", 256, 224, "bilinear"),
    "vgg19": ("VGG-19 (2014), 144M params", "vgg19-dcbb9e9d.pth", "classifier.6", 256, 224, "bilinear"),
    "vgg16_bn": ("VGG-16 with BatchNorm", "vgg16_bn-6c64b313.pth", "classifier.6", 256, 224, "bilinear"),
    "googlenet": ("GoogLeNet / Inception v1 (2014)", "googlenet-1378be20.pth", "fc", 256, 224, "bilinear"),
    "inception_v3": ("Inception v3, 299 px", "inception_v3_google-0cc3c7bd.pth", "fc", 342, 299, "bilinear"),
    "resnet18": ("ResNet-18 (2015)", "resnet18-f37072fd.pth", "fc", 256, 224, "bilinear"),
    "resnet34": ("ResNet-34", "resnet34-b627a593.pth", "fc", 256, 224, "bilinear"),
    "resnet50": ("ResNet-50", "resnet50-11ad3fa6.pth", "fc", 232, 224, "bilinear"),
    "resnet101": ("ResNet-101", "resnet101-cd907fc2.pth", "fc", 232, 224, "bilinear"),
    "resnet152": ("ResNet-152", "resnet152-f82ba261.pth", "fc", 232, 224, "bilinear"),
    "densenet121": ("DenseNet-121", "densenet121-a639ec97.pth", "classifier", 256, 224, "bilinear"),
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2-7ebf99e0.pth", "classifier.1", 232, 224, "bilinear"),
    "mobilenet_v3_small": ("MobileNetV3-Small", "mobilenet_v3_small-047dcff4.pth", "classifier.3", 256, 224,
                           "bilinear"),
    "mobilenet_v3_large": ("MobileNetV3-Large", "mobilenet_v3_large-5c1a4163.pth", "classifier.3", 232, 224,
                           "bilinear"),
    "efficientnet_b0": ("EfficientNet-B0", "efficientnet_b0_rwightman-7f5810bc.pth", "classifier.1", 256, 224,
                        "bicubic"),
    "convnext_tiny": ("ConvNeXt-Tiny", "convnext_tiny-983f1562.pth", "classifier.2", 236, 224, "bilinear"),
    "regnet_y_400mf": ("RegNetY-400MF", "regnet_y_400mf-e6988f5f.pth", "fc", 232, 224, "bilinear"),
    # SqueezeNet classifies with a 1x1 convolution: no linear head, so no penultimate embedding
    "squeezenet1_1": ("SqueezeNet 1.1", "squeezenet1_1-b8a52dc0.pth", "classifier.1", 256, 224, "bilinear"),
    "shufflenet_v2_x1_0": ("ShuffleNetV2 1.0x", "shufflenetv2_x1-5666bf0f80.pth", "fc", 256, 224, "bilinear"),
    "wide_resnet50_2": ("Wide ResNet-50-2", "wide_resnet50_2-9ba9bcbe.pth", "fc", 232, 224, "bilinear"),
}


def _cfgs(name: str) -> tuple[ModelCfg, ModelCfg]:
    """(untrained, published weights) configurations of a torchvision model."""
    _, filename, head, resize, size, interpolation = TORCHVISION_MODELS[name]
    untrained = ModelCfg(input_size=(size, size), resize=342 if size == 299 else 256, classifier=head)
    weights = untrained.replace(url=_TORCHVISION + filename, resize=resize, interpolation=interpolation,
                                dataset="imagenet", source=_SOURCE)
    return untrained, weights


def _new_head(net: nn.Module, head: str, num_classes: int) -> None:
    """Replace the final linear layer (or SqueezeNet's 1x1 classifier convolution) by a fresh one."""
    parent, _, attr = head.rpartition(".")
    holder = net.get_submodule(parent) if parent else net
    old = getattr(holder, attr)
    new = (nn.Linear(old.in_features, num_classes) if isinstance(old, nn.Linear)
           else nn.Conv2d(old.in_channels, num_classes, old.kernel_size))
    setattr(holder, attr, new)


def _builder(name: str):
    untrained, published = _cfgs(name)

    def build(pretrained: bool = False, num_classes: int | None = None) -> Classifier:
        """A torchvision ImageNet classifier (torchvision's DEFAULT weights when pretrained)."""
        import torchvision.models as tvm
        weights = tvm.get_model_weights(name).DEFAULT if pretrained else None
        kwargs = {}
        if weights is not None:
            download(published.url, f"torchvision {name}")  # clear offline error before torchvision tries
        elif name in ("googlenet", "inception_v3"):
            kwargs = {"aux_logits": False, "init_weights": True}
        net = tvm.get_model(name, weights=weights, **kwargs)
        if num_classes and num_classes != 1000:
            _new_head(net, published.classifier, num_classes)
        return build_classifier(net, published if pretrained else untrained, name=name, kwargs={},
                                feature_layers=guess_layers(net)[0], pretrained=pretrained)
    return build


for _name, (_desc, *_) in TORCHVISION_MODELS.items():
    _untrained, _published = _cfgs(_name)
    register_model(_name, family="imagenet", cfg=_untrained, weights=_published,
                   description=f"{_desc} (torchvision)")(_builder(_name))


def timm_model(name: str, pretrained: bool = False, num_classes: int | None = None) -> Classifier:
    """A timm model (needs `pip install timm`; weights from the Hugging Face hub when online)."""
    try:
        import timm
    except ImportError:
        raise CnnlabError(f"Model 'timm/{name}' needs timm: `pip install timm`.") from None
    overlay = _timm_weights(name) if pretrained else None
    try:
        net = timm.create_model(name, pretrained=pretrained, num_classes=num_classes or 1000,
                                **({"pretrained_cfg_overlay": overlay} if overlay else {}))
    except Exception as e:  # noqa: BLE001 - download or name errors from timm
        raise CnnlabError(f"timm could not create '{name}' ({str(e).splitlines()[0][:150]}); "
                          "check the name (timm.list_models()) and the network.") from None
    model = wrap(net, name=f"timm/{name}")  # timm's own cfg: input size, crop, mean/std, classifier
    model.spec = {"name": f"timm/{name}", "kwargs": {}}
    return model


def _timm_weights(name: str) -> dict | None:
    """Where timm model `name`'s published weights are on this machine ({"file": path} for timm), None
    when timm should fetch them itself (the hub answers); CnnlabError naming the file when offline."""
    from timm.models import get_pretrained_cfg
    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return None  # timm's own error names the unknown model
    if not cfg.hf_hub_id:
        return {"file": str(download(cfg.url, f"timm {name}")), "custom_load": cfg.custom_load} if cfg.url else None
    from huggingface_hub import constants, try_to_load_from_cache
    files = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    for filename in files:
        found = try_to_load_from_cache(cfg.hf_hub_id, filename)
        if isinstance(found, str):
            return {"file": found, "custom_load": False}
    url = f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/{files[0]}"
    why = _offline_reason("huggingface.co")
    if why:
        raise CnnlabError(f"The weights of timm/{name} are not in the Hugging Face cache ({constants.HF_HUB_CACHE}) "
                          f"and cannot be fetched ({why}); with network access run `hf download {cfg.hf_hub_id}` "
                          f"(or fetch {url}) once, or pass --weights PATH.")
    return None


def _offline_reason(host: str, timeout: float = 3.0) -> str | None:
    """Why `host` cannot be reached (an offline setting, no DNS, no answer in `timeout` s), or None when
    it answers or a proxy is configured (then the download itself decides)."""
    import socket
    for var in ("CNNLAB_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var}={os.environ[var]} is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as e:
        return f"{host} is unreachable: {e.strerror or type(e).__name__}"
    return None


def timm_entry(name: str) -> ModelEntry:
    """A registry entry for timm's model `name` (built on demand; timm's own cfg configures it)."""
    def build(pretrained: bool = False, num_classes: int | None = None) -> Classifier:
        """A timm model."""
        return timm_model(name, pretrained, num_classes)
    return ModelEntry(f"timm/{name}", build, "timm", "a timm model")


register_prefix("timm/", timm_entry)
