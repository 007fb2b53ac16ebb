"""Class activation maps (pytorch-grad-cam's idea): one base owns the hooks, the targets and the
upsampling; a CAM rule only supplies the weight of each channel of the layer.

Grad-CAM (Selvaraju et al. 2017) weights each channel by the spatial mean of the target logit's
gradient there; the map is the weighted sum of the channels, rectified, upsampled to the input.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import CnnlabError
from ..models import Classifier
from ..models.classifier import Target
from .hooks import capture

#: A CAM rule: (activations [N,C,h,w], their gradients [N,C,h,w]) -> channel weights [N,C,1,1].
ChannelWeights = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gradcam_weights(act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Grad-CAM: each channel weighted by its spatially averaged gradient."""
    return grad.mean((2, 3), keepdim=True)


@dataclass
class LayerCam:
    """What one forward and backward of a CAM gives: the map at the layer's resolution and upsampled to
    the input's, the classes it explains, the logits, and (when asked) the input gradient of the same
    target logit and other layers captured on the way."""

    layer: str
    maps: torch.Tensor
    upsampled: torch.Tensor
    layer_shape: list[int]
    targets: torch.Tensor
    logits: torch.Tensor
    notes: list[str] = field(default_factory=list)
    input_gradient: torch.Tensor | None = None
    captured: dict[str, torch.Tensor] = field(default_factory=dict)


def cam_layer(model: Classifier, layer: str | None = None) -> str:
    """The layer a CAM is taken at: `layer` (a name or early/middle/late), else the last feature layer."""
    if layer:
        return model.resolve_layer_name(layer)
    names = list(model.layers())
    if not names:
        raise CnnlabError(f"Model '{model.name}' names no feature layers; pass --layer with a convolutional layer.")
    return names[-1]


def class_activation_map(model: Classifier, x: torch.Tensor, target: Target = None, layer: str | None = None, *,
                         weights: ChannelWeights = gradcam_weights, relu: bool = True, input_gradient: bool = False,
                         capture_layers: Sequence[str] = ()) -> LayerCam:
    """The CAM of `target` (None: the prediction) at `layer` for a checked batch `x`, from one forward and
    one backward pass. Run it inside `model.frozen()` with gradients enabled.

    input_gradient: also return d logit / d x from the same backward (gradient saliency for free);
    without it the layer's output is a detached leaf, so autograd builds no graph before the layer.
    capture_layers: other layers (resolved names) whose outputs of this forward are returned too.
    """
    name = cam_layer(model, layer)
    extra = list(capture_layers)
    if input_gradient:
        x = x.detach().requires_grad_(True)
    with capture(model, [name, *extra], leaf=not input_gradient) as got:
        logits = model(x)
    act = got.get(name)
    if act.dim() != 4 or act.shape[-1] * act.shape[-2] < 2:
        raise CnnlabError(f"Layer '{name}' outputs shape {list(act.shape)} with no spatial map; Grad-CAM needs a "
                          f"convolutional layer such as: {', '.join(list(model.layers())[-3:])}.")
    targets = model.targets(target, logits)
    score = logits.gather(1, targets[:, None]).sum()
    if input_gradient:
        gx, grad = torch.autograd.grad(score, [x, act])
    else:
        gx, (grad,) = None, torch.autograd.grad(score, act)
    act = act.detach()
    cam = (weights(act, grad) * act).sum(1, keepdim=True)
    if relu:
        cam = cam.clamp_min(0)
    up = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return LayerCam(name, cam[:, 0], up, list(act.shape[1:]), targets, logits.detach(), got.notes(), gx,
                    {n: got.get(n).detach() for n in extra})
