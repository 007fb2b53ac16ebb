"""Photo datasets on disk: any image-folder tree, MiniPlaces (its label lists and categories file) and
Oxford-IIIT Pets (the official trainval/test split, downloaded through torchvision).

Each loader returns a `Split` of `ImageFiles` (paths + labels + class names); nothing is decoded
here, so listing 100k files costs only a directory walk.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ..errors import CnnlabError
from .base import ImageFiles, Split, seeded_split

#: File endings taken as images when walking a folder (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

#: Subfolder names taken as the held-out part when a folder also holds `train/`.
TEST_FOLDER_NAMES = ("test", "val", "valid", "validation")


def _visible_dirs(path: Path) -> list[Path]:
    return sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _image_files(folder: Path, extensions: tuple[str, ...]) -> list[str]:
    """Image files under `folder` (recursively, sorted, hidden files and folders skipped)."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files)
                  if not f.startswith(".") and f.lower().endswith(extensions)]
    return found


def _class_tree(folder: Path, extensions: tuple[str, ...]) -> dict[str, list[str]]:
    """{class folder name: its image files}, empty class folders dropped."""
    tree = {d.name: _image_files(d, extensions) for d in _visible_dirs(folder)}
    return {c: files for c, files in tree.items() if files}


def _files_from_tree(tree: dict[str, list[str]], classes: list[str], name: str, part: str) -> ImageFiles:
    index = {c: i for i, c in enumerate(classes)}
    paths = [p for c in tree for p in tree[c]]
    y = np.array([index[c] for c in tree for _ in tree[c]], dtype=np.int64)
    return ImageFiles(paths, y, classes, name, {"part": part})


def _check_classes(tree: dict[str, list[str]], where: Path) -> None:
    if not tree:
        loose = _image_files(where, IMAGE_EXTENSIONS) if where.is_dir() else []
        hint = (f"it holds {len(loose)} images but no class subfolders; put each class's images in a folder "
                "named after the class") if loose else "put each class's images in a subfolder named after the class"
        raise CnnlabError(f"Folder '{where}' has no class folders with images in it; {hint}.")
    if len(tree) < 2:
        only = next(iter(tree))
        raise CnnlabError(f"Folder '{where}' has only one class ('{only}'); a classifier needs at least two "
                          "class folders of images.")


def load_folder_dataset(path: str | Path, seed: int = 0, test_fraction: float = 0.2,
                        extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> Split:
    """An image-folder tree -> Split.

    `path/train/<class>/...` with `path/test/<class>/...` (or `val/`, `valid/`, `validation/`) is
    taken as that split; `path/<class>/...` alone is split per class with `seed`, `test_fraction`
    of each class going to the test part (so is `path/train/<class>/...` alone). Class names are the
    folder names, sorted. A flat folder of images (no subfolders) is one unlabelled part (label -1):
    fine for scanning or attacking by prediction, refused by training and evaluation.
    """
    root = Path(path)
    if not root.exists():
        raise CnnlabError(f"Data folder '{root}' does not exist; check the path.")
    if not root.is_dir():
        raise CnnlabError(f"'{root}' is a file, not a folder of class folders.")
    if not 0.0 < test_fraction < 1.0:
        raise CnnlabError(f"test_fraction {test_fraction} must be between 0 and 1 (e.g. 0.2).")
    name = root.resolve().name
    subdirs = {d.name.lower(): d for d in _visible_dirs(root)}
    held_out = next((subdirs[n] for n in TEST_FOLDER_NAMES if n in subdirs), None)
    if "train" in subdirs and held_out is not None:
        train_tree = _class_tree(subdirs["train"], extensions)
        _check_classes(train_tree, subdirs["train"])
        test_tree = _class_tree(held_out, extensions)
        if not test_tree:
            raise CnnlabError(f"Folder '{held_out}' has no class folders with images in it; give it the same "
                              f"class folders as '{subdirs['train']}'.")
        extra = sorted(set(test_tree) - set(train_tree))
        if extra:
            raise CnnlabError(f"Folder '{held_out}' has classes with no training images in "
                              f"'{subdirs['train']}' ({', '.join(extra[:5])}); add them to train/ or remove them.")
        classes = sorted(train_tree)
        train = _files_from_tree(train_tree, classes, name, "train")
        test = _files_from_tree(test_tree, classes, name, held_out.name)
        for part in (train, test):
            part.meta.update(root=str(root), layout="train/test folders")
        return Split(train, test)
    if "train" in subdirs and held_out is None and len(subdirs) == 1:
        root = subdirs["train"]  # only train/: split it like a plain folder of class folders
    tree = _class_tree(root, extensions)
    if not tree and not subdirs:
        loose = [str(f) for f in sorted(root.iterdir()) if f.is_file() and not f.name.startswith(".")
                 and f.name.lower().endswith(extensions)]
        if loose:  # a flat folder of images: unlabelled, nothing held out
            return Split(ImageFiles(loose, np.full(len(loose), -1, dtype=np.int64), [], name,
                                    {"root": str(root), "layout": "flat folder (unlabelled)", "part": "all"}))
    _check_classes(tree, root)
    classes = sorted(tree)
    everything = _files_from_tree(tree, classes, name, "all")
    train_idx, test_idx = seeded_split(len(everything), 1.0 - test_fraction, seed, labels=everything.y)
    if len(test_idx) == 0:  # too few images to hold any out: one part, and asking for a test part says so
        everything.meta.update(root=str(root), layout="class folders")
        return Split(everything)
    train, test = everything.subset(train_idx), everything.subset(test_idx)
    for part, label in ((train, "train"), (test, "test")):
        part.meta.update(root=str(root), layout="class folders", part=label, seed=seed, test_fraction=test_fraction)
    return Split(train, test, everything)


def _listed_photos(paths: list[str], labels: list[int], classes: list[str], names: tuple[str, str], part: str,
                   root: Path, listing: Path, fix: str, every: int = 1) -> ImageFiles:
    """The photos a dataset's list names as ImageFiles, or one sentence when one is missing (every
    `every`-th is checked: 100k stat calls on a network disk take a while)."""
    missing = [p for p in paths[::max(1, every)] if not os.path.exists(p)]
    if missing:
        raise CnnlabError(f"{names[0]} photo '{missing[0]}' listed in '{listing}' is missing ({len(missing)} of "
                          f"those checked); {fix}.")
    return ImageFiles(paths, np.array(labels, dtype=np.int64), classes, names[1], {"part": part, "root": str(root)})


# -- MiniPlaces ----------------------------------------------------------------------------------

def _find(data_dir: Path, names: tuple[str, ...], subdirs: tuple[str, ...]) -> Path | None:
    for sub in subdirs:
        for n in names:
            p = data_dir / sub / n
            if p.is_file():
                return p
    return None


def _read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def miniplaces_categories(path: str | Path) -> list[str]:
    """MiniPlaces `categories.txt` ('/a/abbey 0', '/b/bakery/shop 10', ...) -> names by index
    ('abbey', 'bakery/shop', ...)."""
    pairs = []
    for line in _read_lines(Path(path)):
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].isdigit():
            raise CnnlabError(f"Line '{line}' of '{path}' is not '<category> <index>' as in MiniPlaces' categories.txt.")
        raw = parts[0].strip("/").split("/")
        pairs.append((int(parts[1]), "/".join(raw[1:] if len(raw) > 1 and len(raw[0]) == 1 else raw)))
    pairs.sort()
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise CnnlabError(f"Category indices in '{path}' are not 0..{len(pairs) - 1}, one each.")
    return [n for _, n in pairs]


_MP_SUBDIRS = ("", "data", "development_kit/data", "devkit/data")


def load_miniplaces(data_dir: str | Path) -> Split:
    """MiniPlaces (100 scenes; 100k training and 10k validation photos) -> Split(train, val).

    Expects the layout of the official download: `categories.txt`, `train.txt` and `val.txt` (lines
    'train/a/abbey/00000001.jpg 0') in `data_dir` (or its `data/` or `development_kit/data/`), and the
    photos under `data_dir/images/` (or `data_dir/`). The unlabelled test photos are not used.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise CnnlabError(f"MiniPlaces folder '{root}' does not exist; download MiniPlaces "
                          "(github.com/CSAILVision/miniplaces) and pass its folder with --data-dir.")
    cats = _find(root, ("categories.txt",), _MP_SUBDIRS)
    lists = {part: _find(root, (f"{part}.txt", f"{part}.txt.gz"), _MP_SUBDIRS) for part in ("train", "val")}
    missing = [n for n, p in (("categories.txt", cats), *((f"{k}.txt", v) for k, v in lists.items())) if p is None]
    if missing:
        raise CnnlabError(f"MiniPlaces folder '{root}' lacks {', '.join(missing)}; pass the folder holding the "
                          "MiniPlaces images/ and its development kit's label files.")
    classes = miniplaces_categories(cats)
    image_root = next((d for d in (root / "images", root / "data" / "images", root) if d.is_dir()
                       and any((d / part).is_dir() for part in ("train", "val"))), root)
    parts = []
    for part, listing in lists.items():
        paths, labels = [], []
        for line in _read_lines(listing):
            rel, _, label = line.rpartition(" ")
            if not label.isdigit() or int(label) >= len(classes):
                raise CnnlabError(f"Line '{line}' of '{listing}' does not end in a category index 0..{len(classes) - 1}.")
            paths.append(str(image_root / rel))
            labels.append(int(label))
        parts.append(_listed_photos(paths, labels, classes, ("MiniPlaces", "miniplaces"), part, root, listing,
                                    f"the images should be under '{image_root}/{part}/'", every=len(paths) // 50))
    return Split(*parts)


# -- Oxford-IIIT Pets ------------------------------------------------------------------------------

def holds_pets(folder: Path) -> bool:
    """Whether `folder` holds Oxford-IIIT Pets in its own layout (annotations/ and images/)."""
    return (_pets_base(folder) / "annotations" / "trainval.txt").is_file()


def holds_class_folders(folder: Path) -> bool:
    """Whether `folder` is an image-folder dataset: class folders, train/ (and test/), or loose images."""
    if not folder.is_dir():
        return False
    subdirs = {d.name.lower() for d in _visible_dirs(folder)}
    return bool(subdirs & {"train", *TEST_FOLDER_NAMES}) or bool(_class_tree(folder, IMAGE_EXTENSIONS)) or any(
        f.is_file() and f.name.lower().endswith(IMAGE_EXTENSIONS) for f in folder.iterdir())


def _pets_base(data_dir: Path) -> Path:
    """The folder holding images/ and annotations/ (torchvision puts them in oxford-iiit-pet/)."""
    for base in (data_dir / "oxford-iiit-pet", data_dir):
        if (base / "annotations" / "trainval.txt").is_file() and (base / "images").is_dir():
            return base
    return data_dir / "oxford-iiit-pet"


def pets_class_name(image_id: str) -> str:
    """'american_pit_bull_terrier_12' -> 'American Pit Bull Terrier' (torchvision's naming)."""
    raw = image_id.rsplit("_", 1)[0]
    return " ".join(part.title() for part in raw.split("_"))


def load_pets(data_dir: str | Path, download: bool = False) -> Split:
    """Oxford-IIIT Pets, 37 breeds, with the official split -> Split(trainval 3680, test 3669).

    Reads `annotations/{trainval,test}.txt` and `images/` under `data_dir` (or its `oxford-iiit-pet/`,
    where torchvision downloads them). With `download=True` missing files are fetched through
    torchvision's OxfordIIITPet (about 800 MB; needs the internet).
    """
    root = Path(data_dir).expanduser()
    base = _pets_base(root)
    if not (base / "annotations" / "trainval.txt").is_file():
        if not download:
            raise CnnlabError(f"Oxford-IIIT Pets is not in '{root}' (no oxford-iiit-pet/annotations/trainval.txt); "
                              "pass download=True (CLI: --download) to fetch it, or --data-dir where it is.")
        _download_pets(root)
        base = _pets_base(root)
    parts = []
    classes: list[str] | None = None
    for part in ("trainval", "test"):
        ids, labels = [], []
        listing = base / "annotations" / f"{part}.txt"
        if not listing.is_file():
            raise CnnlabError(f"Oxford-IIIT Pets list '{listing}' is missing; re-download the dataset.")
        for line in _read_lines(listing):
            if line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) < 2 or not fields[1].isdigit():
                raise CnnlabError(f"Line '{line}' of '{listing}' is not '<image> <class id> ...' as in Pets' lists.")
            ids.append(fields[0])
            labels.append(int(fields[1]) - 1)
        names = {lab: pets_class_name(i) for i, lab in zip(ids, labels)}
        if classes is None:
            classes = [names[k] for k in sorted(names)]
            if sorted(names) != list(range(len(classes))):
                raise CnnlabError(f"Class ids in '{listing}' are not 1..{len(classes)}; re-download the dataset.")
        paths = [str(base / "images" / f"{i}.jpg") for i in ids]
        parts.append(_listed_photos(paths, labels, classes, ("Oxford-IIIT Pets", "oxford_pets"), part, base, listing,
                                    "re-download the dataset"))
    return Split(*parts)


def _download_pets(root: Path) -> None:
    """Fetch both official splits through torchvision (it verifies the archives' checksums)."""
    try:
        from torchvision.datasets import OxfordIIITPet
        for part in ("trainval", "test"):
            OxfordIIITPet(str(root), split=part, target_types="category", download=True)
    except (OSError, RuntimeError) as e:  # URLError is an OSError
        raise CnnlabError(f"Downloading Oxford-IIIT Pets into '{root}' failed ({e}); check the internet "
                          "connection, or download images.tar.gz and annotations.tar.gz from "
                          "robots.ox.ac.uk/~vgg/data/pets and unpack them there.") from None
