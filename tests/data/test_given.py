"""A user's own data through the one resolver: (x, y) tensors and numpy arrays, a torch Dataset (read into
memory once) and a DataLoader (used as given) -- for training, evaluation, attacks, features and probes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

import cnnlab
from cnnlab.data import GivenLoader, ImageArrays, load_dataset, make_loader, open_dataset
from cnnlab.errors import CnnlabError
from cnnlab.runs import Run


@pytest.fixture(scope="module")
def small(test_set):
    """400 real CIFAR-10 test images (seeded, every class) as ImageArrays."""
    idx = torch.randperm(len(test_set), generator=torch.Generator().manual_seed(0))[:400]
    return test_set.subset(idx.sort().values)


class PhotoList(Dataset):
    """A user's map-style dataset of (H x W x 3 uint8 array, label) items."""

    def __init__(self, data: ImageArrays) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.data.x[i].permute(1, 2, 0).numpy(), int(self.data.y[i])


def test_arrays_and_datasets_become_the_same_in_memory_uint8(small, capsys):
    x01 = small.floats()
    hwc = small.x.permute(0, 2, 3, 1).numpy()
    for given in ((x01, small.y), (hwc, small.y.numpy()), TensorDataset(x01, small.y), PhotoList(small)):
        ds = load_dataset(given)
        assert isinstance(ds, ImageArrays) and torch.equal(ds.x, small.x) and torch.equal(ds.y, small.y), type(given)
    assert "reading the 400 images of 'PhotoList' into memory once" in capsys.readouterr().err
    unlabelled = load_dataset(hwc)
    assert int(unlabelled.y.max()) == -1 and len(unlabelled) == 400
    assert open_dataset(TensorDataset(x01, small.y)).test is None  # one part: the consumer holds out


def test_normalized_or_misshapen_images_get_one_sentence(small):
    normalized = (small.floats() - 0.5) / 0.25
    with pytest.raises(CnnlabError, match="not normalized"):
        load_dataset((normalized, small.y))
    with pytest.raises(CnnlabError, match="labels"):
        load_dataset((small.floats(), small.y[:3]))
    loader = DataLoader(TensorDataset(normalized, small.y), batch_size=50)
    with pytest.raises(CnnlabError, match="drop transforms.Normalize"):
        next(iter(make_loader(load_dataset(loader), 50)))


def test_a_dataloader_is_used_as_given(small):
    loader = DataLoader(TensorDataset(small.x, small.y), batch_size=64, shuffle=False)  # uint8 batches too
    given = load_dataset(loader)
    assert isinstance(given, GivenLoader) and len(given) == 400
    batches = make_loader(given, 999, size=(40, 40))
    assert len(batches) == 7  # the loader's own batch size
    x, y = next(iter(batches))
    assert x.shape == (64, 3, 40, 40) and x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert batches.state_dict() == {"epoch": 0, "batch": 1, "seed": 0}
    with pytest.raises(CnnlabError, match="cannot be split or subset"):
        given.subset([0, 1])


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(8, 10))


@pytest.mark.slow
def test_a_tensordataset_and_a_dataloader_each_train_a_model(small, tmp_path):
    x, y = small.floats(), small.y
    run = cnnlab.train(_net(), data=TensorDataset(x, y), epochs=1, batch_size=50, lr=0.01, out=tmp_path / "ds",
                       progress=False)
    row = run.metrics()[0]
    assert row["val_top1"] is not None and run.config["data"]["train"]["n"] + run.config["data"]["val"]["n"] == 400
    same = cnnlab.train(_net(), data=small, epochs=1, batch_size=50, lr=0.01, out=tmp_path / "arrays",
                        progress=False)
    assert same.metrics()[0]["train_loss"] == row["train_loss"]  # the same fast path, the same numbers

    def loaders() -> tuple[DataLoader, DataLoader]:
        return (DataLoader(TensorDataset(x[:320], y[:320]), batch_size=40, shuffle=True),
                DataLoader(TensorDataset(x[320:], y[320:]), batch_size=80))
    train, val = loaders()
    straight = cnnlab.train(_net(), data=train, val=val, epochs=2, lr=0.01, out=tmp_path / "dl", progress=False)
    rows = straight.metrics()
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0]["val_top1"] is not None
    assert straight.config["data"]["train"]["n"] == 320 and straight.config["data"]["val"]["n"] == 80
    cnnlab.train(_net(), data=train, val=val, epochs=2, lr=0.01, out=tmp_path / "killed", stop_after=1,
                 progress=False)
    with pytest.raises(CnnlabError, match="pass it again"):
        cnnlab.train.resume(tmp_path / "killed", model=_net(), data=train, progress=False)
    with pytest.raises(CnnlabError, match="model given as an object"):
        cnnlab.train.resume(tmp_path / "killed", data=train, val=val, progress=False)
    resumed = cnnlab.train.resume(tmp_path / "killed", model=_net(), data=train, val=val, progress=False)
    assert [r["train_loss"] for r in Run.open(resumed.path).metrics()] == [r["train_loss"] for r in rows]


@pytest.mark.slow
def test_evaluate_attack_eval_features_and_probe_take_a_users_data(resnet20, small):
    from cnnlab.attacks import attack_eval
    from cnnlab.train import evaluate
    from cnnlab.transfer import extract_features, run_probe
    keep = torch.randperm(400, generator=torch.Generator().manual_seed(1))[:120]
    part = small.subset(keep)
    x, y = part.floats(), part.y
    loader = DataLoader(TensorDataset(x, y), batch_size=50)
    ref = evaluate(resnet20, part, progress=False)
    for given in (loader, TensorDataset(x, y), (x.numpy(), y.numpy())):
        got = evaluate(resnet20, given, progress=False)
        assert got.top1 == ref.top1 and got.loss == pytest.approx(ref.loss, abs=1e-6)
    a = attack_eval(resnet20, loader, "fgsm", eps=2 / 255, progress=False)
    b = attack_eval(resnet20, (x, y), "fgsm", eps=2 / 255, progress=False)
    assert a.top1 == b.top1 and a.robust_top1 == b.robust_top1
    f1 = extract_features(resnet20, loader, cache_dir=False, progress=False)
    f2 = extract_features(resnet20, part, cache_dir=False, progress=False)
    assert torch.allclose(f1.features, f2.features) and (f1.labels == f2.labels).all()
    r = run_probe(resnet20, (DataLoader(TensorDataset(x[:80], y[:80]), batch_size=40), TensorDataset(x[80:], y[80:])),
                  cache_dir=False, C=1.0, progress=False)
    assert r.probe.n_train == 80 and r.probe.n_test == 40 and r.probe.top1 > 0.5
