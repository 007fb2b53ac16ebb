"""Image-folder trees, MiniPlaces and Oxford-IIIT Pets layouts, built from real Pets photos in tmp_path."""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.folders import (load_folder_dataset, load_miniplaces, load_pets, miniplaces_categories,
                                 pets_class_name)
from cnnlab.errors import CnnlabError
from tests.conftest import shared


@pytest.fixture(scope="module")
def pets_npz():
    d = np.load(shared("oxford_pets_subset.npz"))
    return {k: d[k] for k in d.files}


def photo_bytes(d: dict, i: int) -> bytes:
    return d["jpeg"][d["offsets"][i]:d["offsets"][i + 1]].tobytes()


def write_photos(d: dict, folder: Path, breeds: list[int], per_breed: int, start: int = 0) -> None:
    """Real Pets JPEGs into folder/<breed>/<source name>."""
    for b in breeds:
        idx = np.flatnonzero(d["label"] == b)[start:start + per_breed]
        for i in idx:
            target = folder / str(d["classes"][b]) / str(d["source_name"][i])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(photo_bytes(d, i))


def test_class_folders_are_split_per_class_with_a_seed(tmp_path, pets_npz):
    write_photos(pets_npz, tmp_path, [0, 1, 2], 10)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    split = load_folder_dataset(tmp_path, seed=3, test_fraction=0.3)
    assert split.classes == sorted(str(pets_npz["classes"][b]) for b in [0, 1, 2])
    assert len(split.train) == 21 and len(split.test) == 9
    assert np.bincount(split.test.y).tolist() == [3, 3, 3]  # stratified
    assert not set(split.train.paths) & set(split.test.paths)
    for part in (split.train, split.test):  # labels follow the folder names
        for p, y in zip(part.paths, part.y):
            assert Path(p).parent.name == split.classes[y]
    again = load_folder_dataset(tmp_path, seed=3, test_fraction=0.3)
    assert again.test.paths == split.test.paths
    other = load_folder_dataset(tmp_path, seed=4, test_fraction=0.3)
    assert other.test.paths != split.test.paths


@pytest.mark.parametrize("held_out", ["test", "val"])
def test_train_and_test_subfolders_are_that_split(tmp_path, pets_npz, held_out):
    write_photos(pets_npz, tmp_path / "train", [3, 4], 7)
    write_photos(pets_npz, tmp_path / held_out, [3, 4], 3, start=7)
    split = load_folder_dataset(tmp_path)
    assert (len(split.train), len(split.test)) == (14, 6)
    assert split.test.meta["part"] == held_out
    assert all(f"/{held_out}/" in p for p in split.test.paths)
    assert split.train.classes == split.test.classes


def test_bad_folders_get_one_clear_sentence(tmp_path, pets_npz):
    with pytest.raises(CnnlabError, match="does not exist"):
        load_folder_dataset(tmp_path / "nope")
    empty = tmp_path / "empty"
    (empty / "cats").mkdir(parents=True)
    with pytest.raises(CnnlabError, match="no class folders with images"):
        load_folder_dataset(empty)
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "a.jpg").write_bytes(photo_bytes(pets_npz, 0))
    assert load_folder_dataset(loose).train.y.tolist() == [-1]  # a flat folder: unlabelled images
    (loose / "sub").mkdir()
    with pytest.raises(CnnlabError, match="holds 1 images but no class subfolders"):
        load_folder_dataset(loose)
    one = tmp_path / "one"
    write_photos(pets_npz, one, [5], 4)
    (one / "empty_class").mkdir()
    with pytest.raises(CnnlabError, match="only one class"):
        load_folder_dataset(one)
    extra = tmp_path / "extra"
    write_photos(pets_npz, extra / "train", [0, 1], 2)
    write_photos(pets_npz, extra / "test", [0, 2], 1)
    with pytest.raises(CnnlabError, match="no training images"):
        load_folder_dataset(extra)


def test_miniplaces_layout_with_its_real_categories_file(tmp_path, pets_npz):
    meta = shared("miniplaces_meta")
    names = miniplaces_categories(meta / "categories.txt")
    assert len(names) == 100 and names[0] == "abbey" and names[10] == "bakery/shop"
    dev = tmp_path / "development_kit" / "data"
    dev.mkdir(parents=True)
    (dev / "categories.txt").write_bytes((meta / "categories.txt").read_bytes())
    train_lines = gzip.open(meta / "train.txt.gz", "rt").read().splitlines()[:3]  # three abbey photos
    val_lines = gzip.open(meta / "val.txt.gz", "rt").read().splitlines()[:2]
    (dev / "train.txt").write_text("\n".join(train_lines) + "\n")
    with gzip.open(dev / "val.txt.gz", "wt") as f:
        f.write("\n".join(val_lines) + "\n")
    for i, line in enumerate(train_lines + val_lines):
        target = tmp_path / "images" / line.split()[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(photo_bytes(pets_npz, i))
    split = load_miniplaces(tmp_path)
    assert len(split.classes) == 100
    assert len(split.train) == 3 and split.train.y.tolist() == [0, 0, 0]
    assert split.test.y.tolist() == [int(v.split()[1]) for v in val_lines]
    assert all(Path(p).exists() for p in split.train.paths + split.test.paths)
    (tmp_path / "images" / train_lines[0].split()[0]).unlink()
    with pytest.raises(CnnlabError, match="is missing"):
        load_miniplaces(tmp_path)
    with pytest.raises(CnnlabError, match="lacks"):
        load_miniplaces(tmp_path / "images")


def test_pets_official_layout(tmp_path, pets_npz):
    base = tmp_path / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations").mkdir()
    rows = {"trainval": [], "test": []}
    for b in range(37):  # two photos of each breed are enough
        for rank, i in enumerate(np.flatnonzero(pets_npz["label"] == b)[:2]):
            stem = str(pets_npz["source_name"][i]).rsplit(".", 1)[0]
            (base / "images" / f"{stem}.jpg").write_bytes(photo_bytes(pets_npz, i))
            rows["trainval" if rank == 0 else "test"].append(f"{stem} {b + 1} 1 1")
    for part, lines in rows.items():
        (base / "annotations" / f"{part}.txt").write_text("\n".join(lines) + "\n")
    split = load_pets(tmp_path)
    assert len(split.classes) == 37 and len(split.train) == 37 and len(split.test) == 37
    assert split.classes[0] == "Abyssinian" and split.classes[2] == "American Pit Bull Terrier"
    assert split.train.meta["part"] == "trainval"
    assert pets_class_name("great_pyrenees_101") == "Great Pyrenees"
    img = Image.open(io.BytesIO(Path(split.test.paths[5]).read_bytes()))
    assert img.size[0] >= 256 or img.size[1] >= 256


def test_pets_missing_without_download_says_how(tmp_path):
    with pytest.raises(CnnlabError, match="download=True"):
        load_pets(tmp_path)


def test_a_lone_train_folder_is_split_with_the_seed(tmp_path, pets_npz):
    write_photos(pets_npz, tmp_path / "train", [0, 1], 5)
    split = load_folder_dataset(tmp_path, test_fraction=0.4)
    assert len(split.classes) == 2 and (len(split.train), len(split.test)) == (6, 4)
