"""The tour's 'seeing inside' section: feature maps, gradient saliency and Grad-CAM of its photos."""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from ..images import save_image
from .attribution import attribute, mass_fraction
from .featmaps import feature_maps


def tour_section(model: nn.Module, photos: dict[str, torch.Tensor], out: str | Path) -> dict:
    """Write figures to out/figures/ and return what they show (JSON-able): per photo the feature maps
    of the early/middle/late layers, and one figure of gradient saliency and Grad-CAM for all photos."""
    t0 = time.perf_counter()
    out = Path(out)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    names = list(photos)
    x = torch.cat([photos[n] if photos[n].dim() == 4 else photos[n][None] for n in names])
    result: dict = {"featmaps": {}, "saliency": {}, "gradcam": {}, "figures": []}
    for i, n in enumerate(names):
        fm = feature_maps(model, x[i:i + 1], ("early", "middle", "late"), k=5)
        path = save_image(fm.image_grid(96), figs / f"featmaps_{_slug(n)}.png")
        result["featmaps"][n] = {**fm.to_dict(), "figure": str(path.relative_to(out))}
        result["figures"].append(str(path.relative_to(out)))
    sal = attribute(model, x, method="gradient")
    cam = attribute(model, x, method="gradcam")
    centre = torch.zeros(x.shape[-2:], dtype=torch.bool)
    h, w = centre.shape
    centre[h // 4:h - h // 4, w // 4:w - w // 4] = True
    cam_centre = mass_fraction(cam.maps, centre).tolist()
    for i, n in enumerate(names):
        result["saliency"][n] = {"target": sal.labels[i], "score": sal.scores[i], "peak_yx": sal.to_dict()["peaks_yx"][i]}
        result["gradcam"][n] = {"target": cam.labels[i], "layer": cam.layer, "centre_mass": cam_centre[i]}
    path = _saliency_figure(names, sal, cam, figs / "saliency_gradcam.png")
    result["figures"].append(str(path.relative_to(out)))
    result["seconds"] = time.perf_counter() - t0
    return result


def _saliency_figure(names: list[str], sal, cam, path: Path) -> Path:  # noqa: ANN001
    from ..images import normalize01
    from .figures import panel_figure, save_figure
    sal_ov, cam_ov = sal.overlays(0.6), cam.overlays(0.5)
    rows = [[img, normalize01(s), so, co] for img, s, so, co in zip(sal.images, sal.maps, sal_ov, cam_ov)]
    titles = [[f"{n}: {lab}", "|gradient| (max over RGB)", "saliency overlay", f"Grad-CAM {cam.layer}"]
              for n, lab in zip(names, sal.labels)]
    return save_figure(panel_figure(rows, titles, cmap="inferno", cell=2.2), path)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
