"""`cnnlab tour`: the offline main job, an application composed of cnnlab's public verbs.

The bundled EfficientNet-Lite0 looks at scikit-image's photos: its graph is inspected, each photo's
top-3 predicted; then "seeing inside" (feature maps, gradient saliency and Grad-CAM from one batched
pass) and "fooling" (a photo forced to 'toaster' by gradient ascent on that logit, and the untargeted
descent on its own class's logit and probability); the HTML report is built last. Everything lands in
one directory: summary.json, inspect.json, figures/, report.html.
"""
from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import attacks, explain
from .attacks.figures import trajectory_figure
from .devices import resolve_device
from .explain.figures import labeled_grid
from .figures import finish, new_figure, single_threaded
from .graph import inspect_model
from .images import bundled_photo, load_images, save_image, to_uint8
from .models import Classifier, create_model
from .report import build_report
from .runs import fresh_out_dir, write_json

TOUR_MODEL = "efficientnet_lite0"
TOUR_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "motorcycle_left")
DEPTHS = ("early", "middle", "late")


@dataclass
class TourResult:
    """What the tour did: the summary written to summary.json, the files it wrote, failed sections."""

    out: Path
    summary: dict
    files: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


def load_photos(model: Classifier, names: tuple[str, ...] = TOUR_PHOTOS) -> dict[str, torch.Tensor]:
    """scikit-image's bundled photos, each preprocessed for `model`: name -> [1, 3, H, W] in [0, 1]."""
    return {n: load_images(bundled_photo(n), model) for n in names}


def predictions_figure(photos: dict[str, torch.Tensor], top: dict[str, list], path: Path) -> Path:
    """Each photo above a bar chart of its top-k classes and probabilities."""
    names = list(photos)
    fig, axes = new_figure(2, len(names), figsize=(3.2 * len(names), 5.6), gridspec_kw={"height_ratios": [3, 1.6]})
    for j, n in enumerate(names):
        ax = axes[0, j]
        ax.imshow(to_uint8(photos[n][0]))
        ax.set_title(n, fontsize=11)
        ax.axis("off")
        bar = axes[1, j]
        labels = [p["label"] for p in top[n]][::-1]
        probs = [p["prob"] for p in top[n]][::-1]
        bar.barh(range(len(labels)), probs, color=["#9ecae1"] * (len(labels) - 1) + ["#3182bd"])
        bar.set_yticks(range(len(labels)), [lab[:22] for lab in labels], fontsize=9)
        bar.set_xlim(0, 1)
        bar.tick_params(axis="x", labelsize=8)
        for i, p in enumerate(probs):
            inside = p > 0.78  # a long bar: write the number inside it, in white
            bar.text(p - 0.02 if inside else p + 0.02, i, f"{p:.1%}", va="center", fontsize=8,
                     ha="right" if inside else "left", color="white" if inside else "black")
    fig.suptitle("EfficientNet-Lite0 (bundled ImageNet weights): top-3 per photo", fontsize=12)
    fig.tight_layout()
    return finish(fig, path)


# -- seeing inside: one batched forward and backward for feature maps, saliency and Grad-CAM -------
def seeing_inside(model: Classifier, photos: dict[str, torch.Tensor], out: Path) -> dict:
    """Per photo the 5 most active feature maps of the early/middle/late layers; for all photos one
    figure of gradient saliency and Grad-CAM of the predicted class. Figures are drawn with PIL, so the
    section costs about two passes of the model. Returns what the figures show (paths relative to out)."""
    figs = out / "figures"
    names = list(photos)
    x = torch.cat([photos[n] for n in names])
    layers = [model.resolve_layer_name(d) for d in DEPTHS]
    sal, cam, acts = explain.saliency_and_gradcam(model, x, capture_layers=layers)
    result: dict = {"featmaps": {}, "saliency": {}, "gradcam": {}, "figures": []}
    with single_threaded():  # the rest is small-tensor work: figures
        for i, n in enumerate(names):
            fm = explain.maps_from_activations(model, x[i], {l: a[i] for l, a in acts.items()}, DEPTHS, layers, k=5)
            path = save_image(fm.image_grid(112), figs / f"featmaps_{_slug(n)}.png")
            result["featmaps"][n] = {**fm.to_dict(), "figure": str(path.relative_to(out))}
            result["figures"].append(str(path.relative_to(out)))
        h, w = x.shape[-2:]
        centre = torch.zeros(h, w, dtype=torch.bool)
        centre[h // 4:h - h // 4, w // 4:w - w // 4] = True
        cam_centre = explain.mass_fraction(cam.maps, centre).tolist()
        peaks = sal.to_dict()["peaks_yx"]
        for i, n in enumerate(names):
            result["saliency"][n] = {"target": sal.labels[i], "score": sal.scores[i], "peak_yx": peaks[i]}
            result["gradcam"][n] = {"target": cam.labels[i], "layer": cam.layer, "centre_mass": cam_centre[i]}
        rows = [[img, s.expand(3, -1, -1), so, co] for img, s, so, co in
                zip(sal.images, sal.display_maps(), sal.overlays(0.6), cam.overlays(0.5))]
        titles = [[f"{n}: {lab}", "|gradient|", "saliency overlay", f"Grad-CAM {cam.layer}"]
                  for n, lab in zip(names, sal.labels)]
        path = save_image(labeled_grid(rows, titles), figs / "saliency_gradcam.png")
    result["figures"].append(str(path.relative_to(out)))
    return result


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


# -- fooling: force a photo to 'toaster', descend on its own class ------------------------------------
def fooling(model: Classifier, photos: dict[str, torch.Tensor], out: Path, target: str = "toaster",
            photo: str = "chelsea", max_steps: int = 20) -> dict:
    """Force `photo` to `target` by gradient ascent on its logit (raw steps of 0.1, clipped to [0,1]),
    and run the untargeted descent on the logit and on the probability of its own class, with figures."""
    figs = out / "figures"
    name = photo if photo in photos else next(iter(photos))
    x = photos[name]
    forced = attacks.logit_ascent(model, x, target, steps=max_steps, step_size=0.1)
    descent = attacks.logit_descent(model, x, steps=max_steps, step_size=0.1)
    pdescent = attacks.prob_descent(model, x, steps=max_steps, step_size=0.1)
    files = {
        "attack_toaster": forced.figure(figs / "attack_toaster.png"),
        "attack_toaster_difference": forced.difference_figure(figs / "attack_toaster_difference.png"),
        "attack_descent": descent.figure(figs / "attack_descent.png"),
        "attack_descent_gradients": trajectory_figure([descent, pdescent], figs / "attack_descent_gradients.png"),
    }

    def brief(r: attacks.AttackResult) -> dict:
        d = r.to_dict()
        return {k: d[k] for k in ("method", "success", "steps", "original", "final", "linf", "l2")} | {
            "classes_seen": d["images"][0].get("classes_seen", []),
            "grad_norms": [round(s["grad_norm"], 6) for s in d["trajectory"] if s["grad_norm"] == s["grad_norm"]]}

    return {"photo": name, "target": target, "forced": brief(forced), "logit_descent": brief(descent),
            "prob_descent": brief(pdescent), "figures": {k: str(Path(v).relative_to(out)) for k, v in files.items()},
            "note": ("Descent on the probability takes steps proportional to its gradient, which shrinks "
                     "as p(1-p) when the class is confident, so it moves far less than descent on the logit.")}


#: The tour's sections after predict, in the order they run: summary key -> section.
SECTIONS: dict[str, Callable[[Classifier, dict[str, torch.Tensor], Path], dict]] = {
    "explain": seeing_inside, "attacks": fooling}


def run_tour(out: str | Path, force: bool = False, echo: Callable[[str], None] = lambda s: None,
             sections: tuple[str, ...] = tuple(SECTIONS), report: bool = True, device: str = "auto") -> TourResult:
    """Run the tour into `out` (refusing a non-empty directory unless `force`) with the model on `device`,
    and return its result.

    A section that raises is recorded in summary.json under its area ('error', 'traceback') and in
    `failed`; the other sections still run. Times of every part are in summary['timings_s'].
    """
    resolve_device(device)  # a device this machine lacks: one sentence, nothing written
    out = fresh_out_dir(out, force)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    failed: dict[str, str] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            timings[name] = round(time.perf_counter() - t0, 3)

    model = timed("load_model", lambda: create_model(TOUR_MODEL, pretrained=True, device=device))
    photos = timed("load_photos", lambda: load_photos(model))
    echo(f"model {model.name} (weights: {model.weights_name}) on {model.device}; photos: {', '.join(photos)}")

    graph = timed("inspect", lambda: inspect_model(model))
    (out / "inspect.json").write_text(json.dumps(graph.to_dict(), indent=1))
    echo(f"inspect: {graph.nodes} graph nodes, {graph.params:,} parameters, {graph.macs / 1e6:.0f} M MACs per "
         f"image; logits node {graph.logits_node} feeds {graph.output_node}")

    def predict() -> dict[str, list[dict]]:
        x = torch.cat(list(photos.values()))
        return {n: [p.to_dict() for p in top] for n, top in zip(photos, model.predict(x, k=3))}

    top = timed("predict", predict)
    for n, preds in top.items():
        echo(f"  {n:<16} " + ", ".join(f"{p['label']} {p['prob']:.0%}" for p in preds))
    fig = timed("predictions_figure", lambda: predictions_figure(photos, top, out / "figures" / "predictions.png"))

    summary: dict[str, Any] = {
        "tour": "cnnlab tour",
        "model": model.describe() | {"name": model.name, "device": str(model.device)},
        "photos": {n: str(bundled_photo(n)) for n in photos},
        "inspect": {k: v for k, v in graph.to_dict().items() if k != "layers"} | {"file": "inspect.json"},
        "predict": {"k": 3, "top": top, "figure": str(fig.relative_to(out))},
    }

    (out / "figures").mkdir(parents=True, exist_ok=True)
    for area in sections:
        fn = SECTIONS[area]
        echo(f"{area} ...")
        try:
            summary[area] = timed(area, lambda fn=fn: fn(model, photos, out))
        except Exception as e:  # noqa: BLE001 - recorded and reported, never hidden
            failed[area] = f"{type(e).__name__}: {e}"
            summary[area] = {"error": failed[area], "traceback": traceback.format_exc()}
            echo(f"{area} FAILED: {failed[area]}")
    timings["total_before_report"] = round(time.perf_counter() - t_start, 3)
    summary["timings_s"] = timings
    summary["failed"] = failed
    write_json(out / "summary.json", summary)

    if report:
        try:
            timed("report", lambda: build_report(out, out / "report.html", force=True))
        except Exception as e:  # noqa: BLE001 - recorded and reported, never hidden
            failed["report"] = f"{type(e).__name__}: {e}"
            summary["report"] = {"error": failed["report"], "traceback": traceback.format_exc()}
    timings["total"] = round(time.perf_counter() - t_start, 3)
    write_json(out / "summary.json", summary)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return TourResult(out, summary, files, failed)
