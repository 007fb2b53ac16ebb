"""`cnnlab tour`: the offline main job. The bundled EfficientNet-Lite0 looks at scikit-image's photos:
inspect its graph, predict each photo's top-3, then every capability area that provides a
`tour_section(model, photos, out) -> dict` (explain, attacks, ...) adds its part; the HTML report
is built last. Everything lands in one directory: summary.json, inspect.json, figures/, report.html.
"""
from __future__ import annotations

import importlib
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch


TOUR_MODEL = "efficientnet_lite0"
TOUR_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "motorcycle_left")
#: Areas whose module may provide `tour_section(model, photos, out) -> dict`, in the order they run.
SECTION_MODULES = ("explain", "attacks")


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


def load_photos(model, names: tuple[str, ...] = TOUR_PHOTOS) -> dict[str, torch.Tensor]:
    """scikit-image's bundled photos, each preprocessed for `model`: name -> [1, 3, H, W] in [0, 1]."""
    from .images import bundled_photo, load_images
    return {n: load_images(bundled_photo(n), model) for n in names}


def predictions_figure(photos: dict[str, torch.Tensor], top: dict[str, list], path: Path) -> Path:
    """Each photo above a bar chart of its top-k classes and probabilities."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .images import to_uint8
    names = list(photos)
    fig, axes = plt.subplots(2, len(names), figsize=(3.2 * len(names), 5.6),
                             gridspec_kw={"height_ratios": [3, 1.6]}, squeeze=False)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _section(area: str) -> Callable[..., dict] | None:
    """cnnlab.<area>.tour.tour_section, or None when the area or its tour module does not exist (yet)."""
    try:
        mod = importlib.import_module(f"cnnlab.{area}.tour")
    except ModuleNotFoundError as e:
        if e.name in (f"cnnlab.{area}.tour", f"cnnlab.{area}", "cnnlab"):
            return None
        raise
    return getattr(mod, "tour_section", None)


def _report_builder() -> Callable[..., Path] | None:
    try:
        mod = importlib.import_module("cnnlab.report")
    except ModuleNotFoundError as e:
        if e.name == "cnnlab.report":
            return None
        raise
    return getattr(mod, "build_report", None)


def run_tour(out: str | Path, force: bool = False, echo: Callable[[str], None] = lambda s: None,
             sections: tuple[str, ...] = SECTION_MODULES, report: bool = True) -> TourResult:
    """Run the tour into `out` (refusing a non-empty directory unless `force`) and return its result.

    A section that raises is recorded in summary.json under its area ('error', 'traceback') and in
    `failed`; the other sections still run. Times of every part are in summary['timings_s'].
    """
    from .images import bundled_photo
    from .graph import inspect_model
    from .models import create_model

    from .runs import fresh_out_dir, write_json
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

    model = timed("load_model", lambda: create_model(TOUR_MODEL, pretrained=True))
    photos = timed("load_photos", lambda: load_photos(model))
    echo(f"model {model.name} ({model.weights_name}); photos: {', '.join(photos)}")

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
        "model": model.describe() | {"name": model.name},
        "photos": {n: str(bundled_photo(n)) for n in photos},
        "inspect": {k: v for k, v in graph.to_dict().items() if k != "layers"} | {"file": "inspect.json"},
        "predict": {"k": 3, "top": top, "figure": str(fig.relative_to(out))},
    }

    for area in sections:
        fn = _section(area)
        if fn is None:
            summary[area] = {"skipped": f"cnnlab.{area} provides no tour_section"}
            continue
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

    builder = _report_builder() if report else None
    if builder is not None:
        try:
            timed("report", lambda: builder(out, out / "report.html", force=True))
        except Exception as e:  # noqa: BLE001
            failed["report"] = f"{type(e).__name__}: {e}"
            summary["report"] = {"error": failed["report"], "traceback": traceback.format_exc()}
        timings["total"] = round(time.perf_counter() - t_start, 3)
        write_json(out / "summary.json", summary)
    else:
        timings["total"] = timings["total_before_report"]
        write_json(out / "summary.json", summary)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return TourResult(out, summary, files, failed)
