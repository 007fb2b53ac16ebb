"""The dataset resolver: every kind of source resolves (in its layout, from $CNNLAB_DATA), splits are
seeded and stratified, bad data gets one sentence. Images are real CIFAR-10 and Oxford Pets photos."""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.data import EncodedImages, ImageArrays, ImageFiles, Split, load_dataset, open_dataset, train_val_split
from cnnlab.errors import CnnlabError
from tests.conftest import shared


def test_bad_data_gets_one_clear_sentence(tmp_path):
    with pytest.raises(CnnlabError, match="did you mean: cifar10"):
        load_dataset("cifar01")
    with pytest.raises(CnnlabError, match="did you mean: pets"):
        open_dataset("petz")
    with pytest.raises(CnnlabError, match="does not exist"):
        load_dataset(str(tmp_path / "nope.npz"))
    np.savez(tmp_path / "bad.npz", images=np.zeros((3, 32, 32, 3), np.uint8), y=np.arange(4))
    with pytest.raises(CnnlabError, match="3 images but 4 labels"):
        load_dataset(str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "nokeys.npz", foo=np.zeros(3))
    with pytest.raises(CnnlabError, match="holds no image array"):
        load_dataset(str(tmp_path / "nokeys.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CnnlabError, match="not a readable .npz"):
        load_dataset(str(tmp_path / "junk.npz"))
    with pytest.raises(CnnlabError, match="not an .npz/.npy file"):
        open_dataset(__file__)
    with pytest.raises(CnnlabError, match="Unknown split 'dev'"):
        load_dataset(str(tmp_path / "bad.npz"), "dev")


def test_seeded_stratified_split(test_set):
    a = train_val_split(test_set, val_fraction=0.1, seed=3)
    b = train_val_split(test_set, val_fraction=0.1, seed=3)
    c = train_val_split(test_set, val_fraction=0.1, seed=4)
    assert len(a.train) == 9000 and len(a.test) == 1000
    assert torch.equal(a.test.x, b.test.x) and not torch.equal(a.test.x, c.test.x)
    assert torch.bincount(a.test.y, minlength=10).tolist() == [100] * 10  # stratified by class
    tr = {bytes(t.numpy()) for t in a.train.x[:500]}
    assert not any(bytes(t.numpy()) in tr for t in a.test.x[:500])  # disjoint


def test_the_validation_splits_of_existing_seeds_never_change(test_set):
    """Which images a seed holds out must never change: every published validation number depends on it.
    (The expected indices were computed by the code that published them.)"""
    n = len(test_set)
    index = torch.arange(n)
    tagged = torch.zeros(n, 3, 2, 2, dtype=torch.uint8)  # each image's index written into its pixels
    tagged[:, 0, 0, 0], tagged[:, 0, 0, 1] = (index // 256).to(torch.uint8), (index % 256).to(torch.uint8)
    data = ImageArrays(tagged, test_set.y, test_set.classes, "tagged")
    for fraction, seed, first, total in ((0.1, 0, [3, 7, 21, 29, 66, 73, 76, 78, 104, 115], 5001189),
                                         (0.2, 5, [5, 13, 15, 42, 45, 48, 56, 58, 63, 65], 10009116)):
        held = train_val_split(data, val_fraction=fraction, seed=seed).test.x
        got = held[:, 0, 0, 0].long() * 256 + held[:, 0, 0, 1].long()
        assert got[:10].tolist() == first and int(got.sum()) == total


def test_a_file_without_a_split_holds_nothing_out(tmp_path, test_set):
    np.savez(tmp_path / "a.npz", x=test_set.x[::250].permute(0, 2, 3, 1).numpy(), y=test_set.y[::250].numpy())
    split = open_dataset(tmp_path / "a.npz")
    assert split.test is None and len(split.train) == 40
    # asking for a held-out part it does not have names what it has (never its training images instead)
    with pytest.raises(CnnlabError, match="has no test split: it holds one part only, 40 images"):
        load_dataset(tmp_path / "a.npz", "test")
    with pytest.raises(CnnlabError, match="no val split"):
        split.part("val")
    assert len(load_dataset(tmp_path / "a.npz", "test", fallback_all=True)) == 40  # asked for: all it has
    held = split.holdout(0.25, seed=1)
    assert (len(held.train), len(held.test)) == (30, 10) and len(held.all()) == 40
    assert open_dataset(tmp_path / "a.npz").classes[:2] == ["class 0", "class 1"]  # never guessed from their number


# -- every source kind, from $CNNLAB_DATA ----------------------------------------------------------

@pytest.fixture(scope="module")
def pets_npz():
    d = np.load(shared("oxford_pets_subset.npz"))
    return {k: d[k] for k in d.files}


def _photo(d: dict, i: int) -> bytes:
    return d["jpeg"][d["offsets"][i]:d["offsets"][i + 1]].tobytes()


@pytest.fixture()
def data_home(tmp_path, monkeypatch, pets_npz, test_set):
    """$CNNLAB_DATA holding CIFAR-10 and CIFAR-100 (torchvision's format, real CIFAR-10 test images),
    Oxford Pets (its official layout) and MiniPlaces (its devkit layout), all small."""
    home = tmp_path / "datasets"
    monkeypatch.setenv("CNNLAB_DATA", str(home))
    import torchvision.datasets.cifar as tv_cifar
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)  # our small files, not the archive's
    x = test_set.x[::100].reshape(100, -1).numpy()  # 100 real images, 10 of each class
    y = test_set.y[::100].tolist()
    c10 = home / "cifar-10-batches-py"
    c10.mkdir(parents=True)
    for i in range(1, 6):
        _pickle(c10 / f"data_batch_{i}", {"data": x[(i - 1) * 20:i * 20], "labels": y[(i - 1) * 20:i * 20]})
    _pickle(c10 / "test_batch", {"data": x[:30], "labels": y[:30]})
    _pickle(c10 / "batches.meta", {"label_names": ["airplane"] * 10})
    c100 = home / "cifar-100-python"
    c100.mkdir()
    _pickle(c100 / "train", {"data": x, "fine_labels": [v * 10 for v in y]})
    _pickle(c100 / "test", {"data": x[:20], "fine_labels": [v * 10 for v in y[:20]]})
    _pickle(c100 / "meta", {"fine_label_names": ["apple"] * 100})
    pets = home / "pets" / "oxford-iiit-pet"
    (pets / "images").mkdir(parents=True)
    (pets / "annotations").mkdir()
    rows = {"trainval": [], "test": []}
    for b in range(37):
        for rank, i in enumerate(np.flatnonzero(pets_npz["label"] == b)[:2]):
            stem = str(pets_npz["source_name"][i]).rsplit(".", 1)[0]
            (pets / "images" / f"{stem}.jpg").write_bytes(_photo(pets_npz, i))
            rows["trainval" if rank == 0 else "test"].append(f"{stem} {b + 1} 1 1")
    for part, lines in rows.items():
        (pets / "annotations" / f"{part}.txt").write_text("\n".join(lines) + "\n")
    mp = home / "miniplaces"
    meta = shared("miniplaces_meta")
    (mp / "data").mkdir(parents=True)
    (mp / "data" / "categories.txt").write_bytes((meta / "categories.txt").read_bytes())
    lines = {p: gzip.open(meta / f"{p}.txt.gz", "rt").read().splitlines()[:3] for p in ("train", "val")}
    for part, chosen in lines.items():
        (mp / "data" / f"{part}.txt").write_text("\n".join(chosen) + "\n")
        for k, line in enumerate(chosen):
            f = mp / "images" / line.split()[0]
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(_photo(pets_npz, k))
    return home


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def test_named_datasets_resolve_from_cnnlab_data(data_home, test_set):
    c10 = open_dataset("cifar10")
    assert isinstance(c10.train, ImageArrays) and (len(c10.train), len(c10.test)) == (100, 30)
    assert c10.classes[1] == "automobile"  # CIFAR-10's own names, not the file's
    assert torch.equal(c10.train.x, test_set.x[::100]) and c10.train.meta["source"] == str(data_home)
    assert len(load_dataset("CIFAR-10", "test")) == 30 and len(load_dataset("cifar10", "all")) == 130
    c100 = open_dataset("cifar100")
    assert (len(c100.train), len(c100.test), len(c100.classes)) == (100, 20, 100)
    pets = open_dataset("pets")
    assert isinstance(pets.train, ImageFiles) and (len(pets.train), len(pets.test)) == (37, 37)
    assert pets.classes[0] == "Abyssinian" and str(data_home / "pets") in pets.train.paths[0]
    mp = open_dataset("miniplaces")
    assert (len(mp.train), len(mp.test), len(mp.classes)) == (3, 3, 100) and mp.classes[0] == "abbey"
    assert Path(mp.train.paths[0]).is_file()


def test_data_dir_overrides_cnnlab_data(data_home, tmp_path):
    with pytest.raises(CnnlabError, match=f"not in '{tmp_path / 'elsewhere'}'"):
        load_dataset("cifar10", data_dir=tmp_path / "elsewhere", download=False)
    with pytest.raises(CnnlabError, match="download=True"):
        open_dataset("pets", data_dir=tmp_path / "elsewhere")
    with pytest.raises(CnnlabError, match="--data-dir"):
        open_dataset("miniplaces", data_dir=tmp_path / "elsewhere")


def test_missing_named_datasets_say_where_they_were_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "empty"))
    with pytest.raises(CnnlabError, match=f"CIFAR10 is not in '{tmp_path / 'empty'}'"):
        load_dataset("cifar10", download=False)
    with pytest.raises(CnnlabError, match=f"not in '{tmp_path / 'empty' / 'pets'}'"):
        open_dataset("pets")
    with pytest.raises(CnnlabError, match="MiniPlaces is not in .*--data-dir"):
        open_dataset("miniplaces")


def test_files_and_folders_resolve(tmp_path, pets_npz, test_set):
    pets = open_dataset(shared("oxford_pets_subset.npz"))  # mixed sizes: kept encoded, split by its array
    assert isinstance(pets.train, EncodedImages) and (len(pets.train), len(pets.test)) == (259, 111)
    np.save(tmp_path / "x-data.npy", test_set.x[:12].permute(0, 2, 3, 1).numpy())
    np.save(tmp_path / "x-labels.npy", test_set.y[:12].numpy())
    assert len(load_dataset(tmp_path / "x-data.npy")) == 12
    for b in (0, 1):
        for rank, i in enumerate(np.flatnonzero(pets_npz["label"] == b)[:5]):
            for root, part in ((tmp_path / "flat", ""), (tmp_path / "parts", "train" if rank < 3 else "test")):
                f = root / part / str(pets_npz["classes"][b]) / f"{i}.jpg"
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_bytes(_photo(pets_npz, i))
    flat = open_dataset(tmp_path / "flat", test_fraction=0.4, seed=2)
    assert (len(flat.train), len(flat.test), len(flat.all())) == (6, 4, 10)
    assert sorted(flat.all().paths) == sorted(flat.train.paths + flat.test.paths)
    parts = open_dataset(tmp_path / "parts")
    assert (len(parts.train), len(parts.test)) == (6, 4) and isinstance(parts, Split)
    assert len(load_dataset(tmp_path / "parts", "all")) == 10
    assert len(load_dataset(tmp_path / "flat")) == 8  # the default 80% training part


def test_encoded_photos_train_through_the_streaming_loader():
    from cnnlab.data import make_loader
    part = open_dataset(shared("oxford_pets_subset.npz")).test.subset(range(6))
    x, y = next(iter(make_loader(part, 6, size=(64, 64), shuffle=False, workers=0)))
    assert x.shape == (6, 3, 64, 64) and y.tolist() == part.y.tolist() and 0 <= float(x.min()) <= float(x.max()) <= 1


def test_val_test_on_a_file_without_a_test_split_is_refused(tmp_path, test_set):
    np.savez(tmp_path / "a.npz", x=test_set.x[::100].permute(0, 2, 3, 1).numpy(), y=test_set.y[::100].numpy())
    with pytest.raises(CnnlabError, match="--val test: the data 'a' has no test split .*100 images"):
        train_val_split(tmp_path / "a.npz", "test")
    held = train_val_split(tmp_path / "a.npz", None, 0.2, seed=0)  # what it says to do instead
    assert (len(held.train), len(held.test)) == (80, 20) and held.test.meta["part"].startswith("validation")
    split = np.array(["train"] * 70 + ["test"] * 30)
    np.savez(tmp_path / "b.npz", x=test_set.x[::100].permute(0, 2, 3, 1).numpy(), y=test_set.y[::100].numpy(),
             split=split)
    both = train_val_split(tmp_path / "b.npz", "test")
    assert (len(both.train), len(both.test)) == (70, 30)


def test_every_limit_is_the_same_seeded_random_subset(test_set):
    from cnnlab.data import seeded_subset
    a, b = seeded_subset(test_set, 200, seed=0), seeded_subset(test_set, 200, seed=0)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, seeded_subset(test_set, 200, seed=1).x)
    # the test file is sorted by class: a seeded random subset holds every class, the first 200 only airplanes
    assert len(torch.unique(a.y)) == 10 and set(test_set.y[:200].tolist()) == {0}
    assert seeded_subset(test_set, None) is test_set and seeded_subset(test_set, 10**6) is test_set
    assert a.meta["limit"] == {"images": 200, "seed": 0}


def test_a_local_folder_named_like_a_dataset_is_that_folder_and_says_so(tmp_path, monkeypatch, caplog):
    pets = np.load(shared("oxford_pets_subset.npz"))
    for c in (0, 1):
        for i in np.flatnonzero(pets["label"] == c)[:3]:
            f = tmp_path / "pets" / str(pets["classes"][c]) / f"{i}.jpg"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(pets["jpeg"][pets["offsets"][i]:pets["offsets"][i + 1]].tobytes())
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("WARNING", logger="cnnlab.data"):
        split = open_dataset("pets")
    assert isinstance(split.train, ImageFiles) and split.classes == [str(c) for c in pets["classes"][:2]]
    assert "using the local folder" in caplog.text and "not the Oxford-IIIT Pets dataset" in caplog.text


def test_a_flat_folder_is_one_unlabelled_part(tmp_path):
    pets = np.load(shared("oxford_pets_subset.npz"))
    for i in range(3):
        (tmp_path / f"{i}.jpg").write_bytes(pets["jpeg"][pets["offsets"][i]:pets["offsets"][i + 1]].tobytes())
    split = open_dataset(tmp_path)
    assert split.test is None and len(split.train) == 3 and split.train.y.tolist() == [-1, -1, -1]
    with pytest.raises(CnnlabError, match="unlabelled"):
        from cnnlab.data import check_labels
        check_labels(split.train, 10, "training data")
