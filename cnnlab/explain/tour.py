"""The tour's 'seeing inside' section: feature maps, gradient saliency and Grad-CAM of its photos.

Everything comes from one batched forward and one backward pass (feature maps are captured on the way),
and the figures are drawn with PIL, so the section costs about two passes of the model.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from ..figures import single_threaded
from ..images import save_image
from ..models import Classifier, as_classifier
from .attribution import Attribution, mass_fraction, saliency_and_gradcam
from .featmaps import maps_from_activations
from .figures import labeled_grid

DEPTHS = ("early", "middle", "late")


def tour_section(model: Classifier | nn.Module, photos: dict[str, torch.Tensor], out: str | Path) -> dict:
    """Write figures to out/figures/ and return what they show (JSON-able; paths relative to out): per
    photo the 5 most active feature maps of the early/middle/late layers; for all photos one figure of
    gradient saliency and Grad-CAM of the predicted class."""
    model = as_classifier(model)
    t0 = time.perf_counter()
    out = Path(out)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    names = list(photos)
    x = torch.cat([photos[n] if photos[n].dim() == 4 else photos[n][None] for n in names])
    layers = [model.resolve_layer_name(d) for d in DEPTHS]
    sal, cam, acts = saliency_and_gradcam(model, x, capture_layers=layers)
    with single_threaded():  # the rest is small-tensor work: figures
        result = _summarize(model, out, figs, names, x, layers, sal, cam, acts)
    result["seconds"] = time.perf_counter() - t0
    return result


def _summarize(model: Classifier, out: Path, figs: Path, names: list[str], x: torch.Tensor, layers: list[str],
               sal: Attribution, cam: Attribution, acts: dict[str, torch.Tensor]) -> dict:
    result: dict = {"featmaps": {}, "saliency": {}, "gradcam": {}, "figures": []}
    for i, n in enumerate(names):
        fm = maps_from_activations(model, x[i], {l: a[i] for l, a in acts.items()}, DEPTHS, layers, k=5)
        path = save_image(fm.image_grid(112), figs / f"featmaps_{_slug(n)}.png")
        result["featmaps"][n] = {**fm.to_dict(), "figure": str(path.relative_to(out))}
        result["figures"].append(str(path.relative_to(out)))
    h, w = x.shape[-2:]
    centre = torch.zeros(h, w, dtype=torch.bool)
    centre[h // 4:h - h // 4, w // 4:w - w // 4] = True
    cam_centre = mass_fraction(cam.maps, centre).tolist()
    peaks = sal.to_dict()["peaks_yx"]
    for i, n in enumerate(names):
        result["saliency"][n] = {"target": sal.labels[i], "score": sal.scores[i], "peak_yx": peaks[i]}
        result["gradcam"][n] = {"target": cam.labels[i], "layer": cam.layer, "centre_mass": cam_centre[i]}
    path = _saliency_figure(names, sal, cam, figs / "saliency_gradcam.png")
    result["figures"].append(str(path.relative_to(out)))
    return result


def _saliency_figure(names: list[str], sal: Attribution, cam: Attribution, path: Path) -> Path:
    sal_ov, cam_ov = sal.overlays(0.6), cam.overlays(0.5)
    rows = [[img, s.expand(3, -1, -1), so, co]
            for img, s, so, co in zip(sal.images, sal.display_maps(), sal_ov, cam_ov)]
    titles = [[f"{n}: {lab}", "|gradient|", "saliency overlay", f"Grad-CAM {cam.layer}"]
              for n, lab in zip(names, sal.labels)]
    return save_image(labeled_grid(rows, titles), path)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
