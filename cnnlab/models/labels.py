"""Class names: those of the datasets published weights were trained on, and `class i` for a head
nobody named. Names are never guessed from a head's size alone; ImageNet-1k's 1000-way output is the
one exception, as every 1000-way image classifier predicts its classes."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import CnnlabError, unknown
from .imagenet import imagenet_labels

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

CIFAR100 = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile
cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower
leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter
palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket
rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper
table tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf
woman worm""".split()
assert len(CIFAR100) == 100

_DATASETS = {"cifar10": lambda: list(CIFAR10), "cifar100": lambda: list(CIFAR100), "imagenet": imagenet_labels}


def dataset_classes(dataset: str) -> list[str]:
    """The class names of a dataset weights were trained on: 'cifar10', 'cifar100' or 'imagenet'."""
    if dataset not in _DATASETS:
        raise unknown("dataset of class names", dataset, _DATASETS)
    return _DATASETS[dataset]()


def class_names(num_classes: int) -> list[str]:
    """Names for a head nobody named: ImageNet's for 1000 outputs, else 'class 0', 'class 1', ..."""
    return imagenet_labels() if num_classes == 1000 else [f"class {i}" for i in range(num_classes)]


def read_labels(labels: Sequence[str] | str | Path | None) -> list[str] | None:
    """Class names given as a list, or as a file: one name per line, or a JSON list (or a JSON object
    of index -> name, as Keras' and many repositories' class-index files are)."""
    if labels is None:
        return None
    if not isinstance(labels, (str, Path)):
        return [str(s) for s in labels]
    path = Path(labels)
    if not path.is_file():
        raise CnnlabError(f"Labels file '{path}' does not exist; give a text file with one class name per line.")
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CnnlabError(f"Labels file '{path}' is not valid JSON ({e.msg} at line {e.lineno}); give a JSON "
                              "list or one class name per line.") from None
        if isinstance(data, dict):
            try:
                data = [_json_label(data[k]) for k in sorted(data, key=int)]
            except ValueError:
                raise CnnlabError(f"Labels file '{path}' is a JSON object whose keys are not class indices; "
                                  "give a JSON list or one class name per line.") from None
        return [str(s) for s in data]
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise CnnlabError(f"Labels file '{path}' is empty; give one class name per line.")
    return names


def read_class_names(spec: Sequence[str] | str | Path | None, count: int | None = None,
                     option: str = "--classes") -> list[str] | None:
    """Class names given on the command line: a file (one per line, or JSON; see `read_labels`), a comma
    list ('cat,dog,horse') or a list; checked to number `count` when given. None stays None."""
    if spec is None:
        return None
    if isinstance(spec, (str, Path)):
        text = str(spec)
        is_file = Path(text).expanduser().is_file() or ("," not in text and Path(text).suffix.lower() in
                                                         (".txt", ".json", ".csv", ".names"))
        names = read_labels(Path(text).expanduser()) if is_file else [c.strip() for c in text.split(",")]
    else:
        names = [str(c) for c in spec]
    if not names or any(not n for n in names):
        raise CnnlabError(f"{option} '{spec}' has an empty class name; give a file with one name per line or a "
                          "comma list like cat,dog.")
    if count is not None and len(names) != count:
        raise CnnlabError(f"{option} gives {len(names)} class names but there are {count} classes; give one name "
                          "per class, in index order.")
    return names


def _json_label(value: object) -> str:
    """A class-index entry: a name, or [synset, name] as in Keras' imagenet_class_index.json."""
    return str(value[-1]) if isinstance(value, list) and value else str(value)
