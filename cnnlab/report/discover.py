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

#: JSON files whose place and rendering the report knows.
KNOWN_JSON = {"config.json": "config", "eval.json": "metrics", "final.json": "metrics", "attack.json": "adversarial",
              "summary.json": "summary", "attack_eval.json": "adversarial", "robustness.json": "adversarial"}


@dataclass
class Figure:
    """An image file of the run: where it is, its caption and section."""

    path: Path
    rel: str
    caption: str
    section: str
    mime: str
    size: int

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
                run.figures.append(Figure(path, rel, caption_from_name(rel), section_of(rel),
                                          IMAGE_SUFFIXES[suffix], size))
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
