"""The in-memory batch loader: coverage, exact resume, augmentation, DDP slices, resizing, on real CIFAR-10."""
from __future__ import annotations

import pytest
import torch

from cnnlab.data import Augment, ImageArrays, TensorLoader, augment_batch
from cnnlab.errors import CnnlabError


def test_loader_covers_each_image_once_per_epoch(test_set):
    data = test_set.subset(range(300))
    loader = TensorLoader(data, 64, shuffle=True, seed=1)
    seen = torch.cat([y for _, y in loader])
    assert len(seen) == 300 and loader.state_dict() == {"epoch": 1, "batch": 0, "seed": 1}
    assert torch.equal(torch.bincount(seen, minlength=10), torch.bincount(data.y, minlength=10))
    order1, order2 = loader.order(0), loader.order(1)
    assert not torch.equal(order1, order2) and torch.equal(order1, TensorLoader(data, 64, seed=1).order(0))


def test_loader_resumes_mid_epoch_with_identical_batches(test_set):
    data = test_set.subset(range(500))
    full = TensorLoader(data, 100, augment="crop4,flip,cutout8", seed=7)
    batches = [x for _ in range(2) for x, _ in full]
    part = TensorLoader(data, 100, augment="crop4,flip,cutout8", seed=7)
    it = iter(part)
    got = [next(it)[0] for _ in range(3)]
    state = dict(part.state_dict())
    resumed = TensorLoader(data, 100, augment="crop4,flip,cutout8", seed=7)
    resumed.load_state_dict(state)
    got += [x for x, _ in resumed] + [x for x, _ in resumed]
    assert len(got) == len(batches) and all(torch.equal(a, b) for a, b in zip(got, batches))


def test_augmentation_translates_and_flips_real_images(test_set):
    x = test_set.floats(slice(0, 64))
    gen = torch.Generator().manual_seed(0)
    flipped = augment_batch(x, Augment(flip=True), gen)
    same = [(f == o).all().item() for f, o in zip(flipped, x)]
    mirrored = [(f == o.flip(2)).all().item() for f, o in zip(flipped, x)]
    assert all(s or m for s, m in zip(same, mirrored)) and 10 < sum(mirrored) < 54
    shifted = augment_batch(x, Augment(crop_pad=4, pad_mode="zeros"), torch.Generator().manual_seed(1))
    assert shifted.shape == x.shape
    # every output is the input translated by some (dy, dx) in [-4, 4]^2 with zero fill
    for out, src in zip(shifted[:8], x[:8]):
        padded = torch.nn.functional.pad(src, (4, 4, 4, 4))
        assert any(torch.equal(out, padded[:, 4 + dy:36 + dy, 4 + dx:36 + dx])
                   for dy in range(-4, 5) for dx in range(-4, 5))
    cut = augment_batch(x, Augment(cutout=8), torch.Generator().manual_seed(2))
    changed = (cut != x).any(1).sum((1, 2))
    assert int(changed.max()) <= 64 and int(changed.float().mean()) > 10


def test_ddp_rank_slices_rebuild_the_global_batch(test_set):
    data = test_set.subset(range(256))
    one = TensorLoader(data, 64, augment="crop4,flip", seed=5)
    ranks = [TensorLoader(data, 64, augment="crop4,flip", seed=5, rank=r, world_size=2) for r in (0, 1)]
    for (x, y), (x0, y0), (x1, y1) in zip(one, ranks[0], ranks[1]):
        assert torch.equal(x[0::2], x0) and torch.equal(x[1::2], x1) and torch.equal(y[1::2], y1)


def test_augment_parse():
    assert Augment.parse("standard") == Augment(crop_pad=4, flip=True)
    assert str(Augment.parse("crop2,flip,cutout8")) == "crop2,flip,cutout8"
    assert not Augment.parse("none").active
    with pytest.raises(CnnlabError, match="Unknown augmentation 'rotate'"):
        Augment.parse("crop4,rotate")


def test_loader_resizes_for_bigger_models(test_set):
    data = ImageArrays(test_set.x[:8], test_set.y[:8], test_set.classes)
    x, _ = next(iter(TensorLoader(data, 8, shuffle=False, size=(64, 64))))
    assert x.shape == (8, 3, 64, 64) and 0 <= float(x.min()) and float(x.max()) <= 1


@pytest.mark.device
def test_batches_are_made_on_the_device_in_the_cpu_order_and_resume_exactly(test_set, device):
    data = test_set.subset(range(300))
    make = lambda: TensorLoader(data, 64, augment="crop4,flip,zeros", seed=2, device=device, channels_last=True)
    batches = list(make())
    assert all(x.device == device and y.device == device for x, y in batches)
    cpu = list(TensorLoader(data, 64, augment="crop4,flip,zeros", seed=2))
    assert all(torch.equal(y.cpu(), yc) for (_, y), (_, yc) in zip(batches, cpu))  # the order is drawn on the CPU
    if device.type == "cpu":
        assert all(torch.equal(x, xc) for (x, _), (xc, _) in zip(batches, cpu))
    resumed = make()
    resumed.load_state_dict({"epoch": 0, "batch": 2, "seed": 2})
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(list(resumed), batches[2:]))  # same draws on the device
    idx = resumed.order(0)[:64]
    for out, src in zip(batches[0][0][:6].cpu(), data.floats(idx[:6])):  # a shifted copy of the image or its mirror
        padded = torch.nn.functional.pad(src, (4, 4, 4, 4))
        views = [padded[:, 4 + dy:36 + dy, 4 + dx:36 + dx] for dy in range(-4, 5) for dx in range(-4, 5)]
        assert any(torch.equal(out, v) or torch.equal(out, v.flip(2)) for v in views)


@pytest.mark.device
def test_streamed_photos_arrive_on_the_device_augmented(device):
    from cnnlab.data import StreamLoader, open_dataset
    from tests.conftest import shared
    part = open_dataset(shared("oxford_pets_subset.npz")).test.subset(range(8))
    loader = StreamLoader(part, 4, size=(64, 64), augment="crop4,flip", seed=1, workers=1, device=device)
    (x, y), (x2, _) = list(loader)
    assert x.device == device and y.device == device and x.shape == (4, 3, 64, 64)
    assert y.tolist() == part.y[loader.order(0)[:4].numpy()].tolist()
    again = StreamLoader(part, 4, size=(64, 64), augment="crop4,flip", seed=1, workers=0, device=device)
    again.load_state_dict({"epoch": 0, "batch": 1, "seed": 1})
    assert torch.equal(next(iter(again))[0], x2)



def test_alternating_flip_mirrors_each_image_in_every_other_epoch(test_set):
    data = test_set.subset(range(16))
    assert str(Augment.parse("crop2,altflip")) == "crop2,altflip" and Augment.parse("altflip").active
    loader = TensorLoader(data, 4, shuffle=True, augment="altflip", seed=3)
    seen, batches = [], []
    for _ in range(2):
        flipped = torch.zeros(16, dtype=torch.bool)
        for b, (xb, _) in enumerate(loader):
            batches.append(xb)
            src = data.x[loader.order(loader.epoch)[b * 4:(b + 1) * 4]].float() / 255
            same = (xb == src).flatten(1).all(1)
            mirrored = (xb == src.flip(3)).flatten(1).all(1)
            assert bool((same | mirrored).all())
            flipped[loader.order(loader.epoch)[b * 4:(b + 1) * 4]] = mirrored & ~same
        seen.append(flipped)
    assert bool((seen[0] ^ seen[1]).all())  # every image mirrored in exactly one of two epochs
    assert 0 < int(seen[0].sum()) < 16  # a seeded coin per image, not all the same way
    resumed = TensorLoader(data, 4, shuffle=True, augment="altflip", seed=3)
    resumed.load_state_dict({"epoch": 1, "batch": 2, "seed": 3})
    assert all(torch.equal(a, b) for a, b in zip([xb for xb, _ in resumed], batches[6:]))
