"""Write an attack to a directory: attack.json, the adversarial images as PNG, and the figures."""
from __future__ import annotations

from pathlib import Path

import torch

from ..images import load_images, save_image, unique_stems
from ..models.classifier import Classifier
from ..models.wrap import as_classifier
from ..runs import write_json
from .figures import trajectory_figure
from .result import AttackResult
from .transforms import transform_robustness


def save_attack(result: AttackResult, model: Classifier | torch.nn.Module, out: str | Path,
                names: list[str] | None = None, robustness: bool = True) -> dict:
    """Save `result` under `out` and return what attack.json holds (plus the paths written).

    The adversarial PNGs are 8-bit, so rounding can undo a tiny perturbation: each saved file is
    reloaded and classified again, and `png_still_adversarial` says whether it still fools the model.
    Each image's files are named after its input, made unique (a/x.png and b/x.png give x_* and x-2_*)."""
    model = as_classifier(model)
    out = Path(out)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    names = names or [f"image{i}" for i in range(len(result))]
    doc = result.to_dict()
    files: dict[str, str] = {}
    pngs = []
    for i, (name, stem) in enumerate(zip(names, unique_stems(names))):
        p = save_image(result.images[i], out / f"{stem}_adversarial.png")
        save_image(result.originals[i], out / f"{stem}_original.png")
        pngs.append(p)
        doc["images"][i]["file"] = str(name)
        doc["images"][i]["adversarial_png"] = str(p)
    reloaded = load_images(pngs, None)
    probs = model.probabilities(reloaded)
    for i, row in enumerate(doc["images"]):
        c = int(probs[i].argmax())
        want = int(result.target[i]) if result.target is not None else None
        still = (c == want) if want is not None else (c != int(result.original_class[i]))
        row["png_class"] = {"index": c, "label": result.name_of(c), "prob": round(float(probs[i, c]), 6)}
        row["png_still_adversarial"] = bool(still and bool(result.success[i]))
    if len(result) == 1:
        doc["png_still_adversarial"] = doc["images"][0]["png_still_adversarial"]
    files["attack"] = str(result.figure(figs / "attack.png"))
    files["difference"] = str(result.difference_figure(figs / "difference.png"))
    if result.trajectory is not None and any(len(t) > 1 for t in result.trajectory):
        files["trajectory"] = str(trajectory_figure([result], figs / "trajectory.png"))
    if robustness:
        table = transform_robustness(model, result)
        doc["robustness"] = table.to_dict()
        files["robustness"] = str(table.figure(figs / "robustness.png"))
    doc["figures"] = files
    write_json(out / "attack.json", doc)
    doc["json"] = str(out / "attack.json")
    return doc
