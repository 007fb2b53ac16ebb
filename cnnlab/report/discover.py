"""Find what a run directory holds (config, metrics, JSON results, figures) without knowing its producer.

Producers (trainer, tour, attacks, explain) write in parallel and may add files later, so the report
discovers generically: every JSON file, every metrics.jsonl, every raster image, each placed in a
section by its file name.

Only files inside the run directory are read: a link that leads out of it (`ln -s ~/secret.json
RUN/notes.json`) is listed with a note and never opened, so a report someone asks you to make of their
run cannot carry your files with it.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import CnnlabError
from ..runs import loads_bounded

IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                  ".webp": "image/webp", ".gif": "image/gif"}
#: Files bigger than this are listed but not embedded (a report must stay openable).
MAX_EMBED_BYTES = 12_000_000
MAX_IMAGES = 300
MAX_JSON_BYTES = 20_000_000

#: Section of each figure, decided by the first rule whose words occur in its path (lower case).
SECTION_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("curves", ("curve", "loss", "learning_rate", "lr_", "history", "training", "compare")),
    ("confusion", ("confusion",)),
    ("filters", ("filter", "template", "kernel", "weights")),
    ("featmaps", ("featmap", "feature_map", "feature-map", "featuremap", "activation_map", "fmap")),
    ("attribution", ("saliency", "gradcam", "grad_cam", "grad-cam", "cam", "smoothgrad", "integrated",
                     "_ig", "ig_", "guided", "attribution", "overlay", "heatmap")),
    ("adversarial", ("adv", "attack", "perturb", "fool", "patch", "deepfool", "toaster", "pgd", "fgsm",
                     "robust", "noise", "difference", "descent", "ascent", "trajectory", "original")),
    ("featvis", ("dream", "featvis", "feature_vis", "visualiz", "top_activ", "top-activ", "most_activ")),
    ("predictions", ("predict", "top5", "topk", "photo", "sample", "montage")),
]

#: What a figure cnnlab writes shows, by its file name (a regular expression on the path; {0}, {1}: its
#: groups with '_' read as a space). The first match captions the figure; others get words from the name.
#: Within a section of the report, figures come in this order.
CAPTIONS: list[tuple[str, str]] = [
    (r"(^|/)curves\.png$", "Training objective, error and learning rate against the epoch."),
    (r"(^|/)filters\.png$", ("The first convolution's filters, one RGB tile each, every filter contrast-stretched "
     "to [0, 1] on its own.")),
    (r"(^|/)templates\.png$", "The first layer's weights as images (templates), each contrast-stretched on its own."),
    (r"(^|/)confusion\.png$", ("Confusion matrix: one row per true class, one column per predicted class; each row "
     "sums to 1.")),
    (r"(^|/)predictions\.png$", "Each photo above the model's top-3 classes and their probabilities."),
    (r"(^|/)featmaps_(.+)\.png$", ("{1}: the most active channels of an early, a middle and a late layer (each "
     "map contrast-stretched on its own), beside the image.")),
    (r"(^|/)maps_(.+)\.png$", "Every channel of layer {1} for the image, each contrast-stretched on its own."),
    (r"(^|/)saliency_gradcam\.png$", ("Where the model looks for the class it predicts, per image: each panel's "
     "title names its map (gradient saliency, Grad-CAM), shown alone and over the image.")),
    (r"(^|/)saliency_(.+)\.png$", ("Attribution by {1}, per image: the image titled with the class explained and its "
     "score, the attribution map, and the map over the image.")),
    (r"(^|/)(gradient|smoothgrad|ig|guided|gradcam|deconvnet)_\d+_(.+)\.png$", "{2}: the {1} map over the image."),
    (r"(^|/)attack_toaster\.png$", ("The photo forced to 'toaster' by gradient ascent on that logit: original "
     "(class, probability), the perturbation magnified, and the adversarial image (class, probability).")),
    (r"(^|/)attack_toaster_difference\.png$", ("Where the forcing changed the photo: |adversarial - original|, "
     "largest over the colour channels.")),
    (r"(^|/)attack_descent\.png$", ("Descent on the logit of the photo's own class until its label changes: "
     "original, perturbation (magnified), result.")),
    (r"(^|/)attack_descent_gradients\.png$", ("Descent on the logit against descent on the probability: the "
     "class's probability and the gradient's norm at each step.")),
    (r"(^|/)attack\.png$", ("Each row: the original (class, probability), the perturbation magnified, and the "
     "adversarial image (class, probability).")),
    (r"(^|/)difference\.png$", ("Where the attack changed each image: |adversarial - original|, largest over the "
     "colour channels.")),
    (r"(^|/)trajectory\.png$", ("The attack step by step: the probability of the classes involved and the "
     "gradient's norm.")),
    (r"(^|/)robustness\.png$", ("The original and the adversarial image after a flip, a crop, a rotation, "
     "grayscale, JPEG and blur, each titled with the class the model then predicts.")),
    (r"(^|/)(.+)_adversarial\.png$", "{1}: the adversarial image as saved (8-bit PNG)."),
    (r"(^|/)(.+)_original\.png$", "{1}: the original image at the model's input size."),
    (r"(^|/)patch\.png$", "The adversarial patch and images carrying it, each titled with the predicted class."),
    (r"(^|/)fooling\.png$", ("Images the model labels with high confidence, each titled with its class and "
     "probability.")),
    (r"(^|/)dream\.png$", "The image that maximizes the objective (feature visualization)."),
    (r"(^|/)dream_curve\.png$", "The objective over the optimization steps."),
    (r"(^|/)dream_compare\.png$", "The same objective optimized with and without regularization."),
    (r"(^|/)top_activations\.png$", "The images (and the patch each unit sees) that excite the chosen units most."),
]


@dataclass
class Figure:
    """An image file of the run: where it is, its caption and section."""

    path: Path
    rel: str
    caption: str
    section: str
    mime: str
    size: int
    name: str = ""  # short words from the file name (the image's alt text)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@dataclass
class JsonDoc:
    """A JSON file of the run, parsed (or the sentence saying why it could not be)."""

    rel: str
    data: object = None
    error: str | None = None

    @property
    def stem(self) -> str:
        return Path(self.rel).stem

    def to_dict(self) -> dict:
        return {"rel": self.rel, "error": self.error}


@dataclass
class RunContents:
    """Everything a report can show from one run directory."""

    run_dir: Path
    config: dict | None = None
    metrics: list[dict] = field(default_factory=list)
    metrics_errors: list[str] = field(default_factory=list)
    docs: list[JsonDoc] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    checkpoints: list[tuple[str, int]] = field(default_factory=list)
    other_files: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.config or self.metrics or self.docs or self.figures or self.checkpoints)

    def doc(self, name: str) -> JsonDoc | None:
        """The top-level JSON file of that name (e.g. 'eval.json'), if any."""
        return next((d for d in self.docs if d.rel == name), None)

    def to_dict(self) -> dict:
        return {"run_dir": str(self.run_dir), "config": self.config is not None, "epochs": len(self.metrics),
                "json": [d.to_dict() for d in self.docs], "figures": [f.to_dict() for f in self.figures],
                "checkpoints": [c for c, _ in self.checkpoints], "notes": self.notes}


def caption_of(rel: str) -> str:
    """What the figure at `rel` shows: the CAPTIONS sentence for a file cnnlab writes, else words from its name."""
    for pattern, text in CAPTIONS:
        m = re.search(pattern, rel)
        if m:
            words = [re.sub(r"[_\-.]+", " ", g or "").strip() for g in m.groups()]
            return text.format(*words)
    return caption_from_name(rel)


def figure_order(rel: str) -> int:
    """Where the figure at `rel` comes among its section's figures: in CAPTIONS' order, unknown ones last."""
    return next((i for i, (pattern, _) in enumerate(CAPTIONS) if re.search(pattern, rel)), len(CAPTIONS))


def caption_from_name(rel: str) -> str:
    """'figures/gradcam_chelsea-layer4.png' -> 'Gradcam chelsea layer4' (folder kept when not 'figures')."""
    p = Path(rel)
    words = re.sub(r"[_\-.]+", " ", p.stem).strip()
    words = words[:1].upper() + words[1:] if words else p.name
    parent = "/".join(part for part in p.parent.parts if part not in ("figures", "figs", "."))
    return f"{words} ({parent})" if parent else words


def section_of(rel: str) -> str:
    low = rel.lower()
    for section, words in SECTION_RULES:
        if any(w in low for w in words):
            return section
    return "other"


def read_metrics(path: Path) -> tuple[list[dict], list[str]]:
    """metrics.jsonl -> rows (dicts), and one note per line that is not a JSON object."""
    rows, errors = [], []
    text = path.read_text(encoding="utf-8", errors="replace")
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            row = loads_bounded(line)
        except ValueError as e:
            errors.append(f"{path.name} line {n} is not valid JSON ({e}; a run killed mid-write?); skipped")
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            errors.append(f"{path.name} line {n} is not a JSON object; skipped")
    return rows, errors


def _walk(root: Path, notes: list[str]):
    """Files under root, sorted, skipping hidden files/folders, following no symlinked folders, and
    leaving out (with a note) every link whose target is outside root."""
    inside = root.resolve()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if not p.resolve().is_relative_to(inside):
            notes.append(f"{rel.as_posix()} links outside the run directory; not read")
            continue
        if p.is_file():
            yield p, rel.as_posix()


def discover(run_dir: str | Path, exclude: tuple[Path, ...] = ()) -> RunContents:
    """Read a run directory: config.json, metrics.jsonl, every *.json, every image, checkpoints."""
    root = Path(run_dir)
    if not root.exists():
        raise CnnlabError(f"Run directory '{root}' does not exist; pass the --out folder of a cnnlab run.")
    if not root.is_dir():
        raise CnnlabError(f"'{root}' is a file, not a run directory; pass the folder a cnnlab run wrote.")
    excluded = {p.resolve() for p in exclude}
    run = RunContents(root)
    n_images = 0
    for path, rel in _walk(root, run.notes):
        if path.resolve() in excluded:
            continue
        suffix = path.suffix.lower()
        size = path.stat().st_size
        if rel.startswith("checkpoints/") or suffix in (".pt", ".pth", ".ckpt", ".safetensors", ".th"):
            run.checkpoints.append((rel, size))
        elif suffix in IMAGE_SUFFIXES:
            if size > MAX_EMBED_BYTES:
                run.notes.append(f"{rel} ({size / 1e6:.1f} MB) is too large to embed; open it beside the report")
            elif n_images >= MAX_IMAGES:
                run.notes.append(f"{rel} not embedded: the report holds at most {MAX_IMAGES} images")
            else:
                n_images += 1
                run.figures.append(Figure(path, rel, caption_of(rel), section_of(rel),
                                          IMAGE_SUFFIXES[suffix], size, caption_from_name(rel)))
        elif path.name == "metrics.jsonl" and rel == "metrics.jsonl":
            run.metrics, run.metrics_errors = read_metrics(path)
        elif suffix == ".json":
            run.docs.append(_read_json(path, rel, size))
        elif suffix == ".jsonl":
            rows, errs = read_metrics(path)
            run.docs.append(JsonDoc(rel, rows, "; ".join(errs) or None))
        elif suffix not in (".html",) and not path.name.startswith("events.out.tfevents"):
            run.other_files.append((rel, size))
    cfg = run.doc("config.json")
    if cfg is not None and isinstance(cfg.data, dict):
        run.config = cfg.data
    return run


def _read_json(path: Path, rel: str, size: int) -> JsonDoc:
    if size > MAX_JSON_BYTES:
        return JsonDoc(rel, None, f"{size / 1e6:.0f} MB is too large to show")
    try:
        return JsonDoc(rel, loads_bounded(path.read_text(encoding="utf-8", errors="replace")))
    except ValueError as e:
        return JsonDoc(rel, None, f"not valid JSON ({e})")
