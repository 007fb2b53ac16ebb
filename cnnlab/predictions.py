"""Top-k predictions for image files: files (or directories of them) loaded in batches the model's way,
each unreadable file skipped with its reason, so that one bad file never sinks the others.

    result = cnnlab.predict_files(model, ["cat.jpg", "photos/"], k=3)
    result.predictions[0].top      # [Prediction(index=282, label='tiger cat', prob=0.38), ...]
    result.skipped                 # [(path, reason), ...]
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from .errors import CnnlabError
from .images import expand_image_paths, load_batches
from .models import Classifier, Prediction, as_classifier
from .models.classifier import predictions_rows
from .progress import Progress
from .results import Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class FilePrediction:
    """The top-k classes of one image file."""

    image: str
    top: list[Prediction]

    def to_dict(self) -> dict:
        return {"image": self.image, "top": [p.to_dict() for p in self.top]}


@dataclass(repr=False)
class FilePredictions(Result):
    """Predictions for the files that could be read, in the order given, and the files skipped."""

    predictions: list[FilePrediction] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why it could not be read)

    @property
    def files(self) -> int:
        """How many files were tried."""
        return len(self.predictions) + len(self.skipped)

    def to_dict(self) -> dict:
        return {"predictions": [p.to_dict() for p in self.predictions],
                "skipped": [{"image": path, "reason": reason} for path, reason in self.skipped]}

    def summary_rows(self) -> list[tuple[str, object]]:
        head = [("files", self.files)] + ([("skipped", len(self.skipped))] if self.skipped else [])
        return head + predictions_rows([Path(p.image).name for p in self.predictions],
                                       [p.top for p in self.predictions])

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """One bar chart of the top-k probabilities per file."""
        from .figures import bars_figure, finish
        return finish(bars_figure([(Path(p.image).name, [t.label for t in p.top], [t.prob for t in p.top])
                                   for p in self.predictions], xlabel="probability %"), path)


def predict_files(model: Classifier | nn.Module, sources: Iterable[str | Path], k: int = 3,
                  batch_size: int = 32, progress: bool = True) -> FilePredictions:
    """Top-k classes of every image in `sources` (files, or directories standing for the image files
    directly inside them), `batch_size` images in memory at a time; `progress` shows progress when
    there is more than one batch.

    Raises CnnlabError when `sources` name no image file at all; unreadable files are in `.skipped`.
    """
    sources = [str(s) for s in sources]
    paths = expand_image_paths(sources)
    if not paths:
        raise CnnlabError(f"No image files found in {', '.join(sources) or 'the arguments'}; pass image "
                          "files or a directory holding them.")
    clf = as_classifier(model)
    result = FilePredictions()
    with Progress(len(paths), f"predict {clf.name}", "img", enabled=progress and len(paths) > batch_size) as bar:
        for good, x, bad in load_batches(paths, clf, batch_size):
            result.skipped += bad
            if x is not None:
                result.predictions += [FilePrediction(path, top) for path, top in zip(good, clf.predict(x, k=k))]
            bar.update(len(good) + len(bad))
    return result
