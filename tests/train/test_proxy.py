"""Hard-example selection: the proxy network picks the highest-loss part of each batch, learns from every
Nth batch, is built from the registry with its own arguments (or copied), and trains inside `fit`."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab import distributed
from cnnlab.data import load_dataset
from cnnlab.errors import CnnlabError
from cnnlab.models import as_classifier
from cnnlab.train import TrainConfig
from cnnlab.train.proxy import HardSelection, build_proxy
from tests.conftest import shared


@pytest.fixture(scope="module")
def cifar_batch():
    """64 real CIFAR-10 test images as floats in [0,1] and their labels."""
    d = load_dataset(str(shared("cifar10_test.npz"))).subset(range(64))
    return d.floats(), d.y


def _selection(cfg: TrainConfig) -> HardSelection:
    torch.manual_seed(0)
    model = cnnlab.create_model("airbench", widths="8,16,16", device="cpu")
    proxy = build_proxy(model, cfg, train_set=None)
    return HardSelection(proxy, cfg, distributed.context(torch.device("cpu")), "fp32")


def _proxy_losses(sel: HardSelection, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """What the proxy's loss per image is right now, on a copy (its BatchNorm statistics untouched)."""
    twin = copy.deepcopy(sel.proxy).train()
    with torch.no_grad():
        return F.cross_entropy(twin(x), y, label_smoothing=sel.cfg.label_smoothing, reduction="none")


def test_the_model_gets_the_hardest_part_of_the_batch_in_order(cifar_batch):
    x, y = cifar_batch
    cfg = TrainConfig(hard_fraction=0.25, proxy_every=4, label_smoothing=0.2, data_init=False, channels_last=False)
    sel = _selection(cfg)
    losses = _proxy_losses(sel, x, y)
    before = copy.deepcopy(sel.proxy.net.state_dict())
    xs, ys = sel.pick(x, y, step=1, steps_per_epoch=10)  # not a learning step
    want = losses.topk(16).indices.sort().values
    assert len(ys) == 16 and torch.equal(ys, y[want]) and torch.equal(xs, x[want])
    after = sel.proxy.net.state_dict()
    learnt = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])
              and "running" not in k]
    assert learnt == []  # only BatchNorm's running statistics moved


def test_the_proxy_learns_from_every_nth_batch_only(cifar_batch):
    x, y = cifar_batch
    cfg = TrainConfig(hard_fraction=0.5, proxy_every=3, lr=0.1, data_init=False)
    sel = _selection(cfg)
    changed = []
    for step in range(6):
        w = sel.proxy.net.block1.conv1.weight.detach().clone()
        sel.pick(x, y, step=step, steps_per_epoch=6)
        changed.append(not torch.equal(w, sel.proxy.net.block1.conv1.weight))
    assert changed == [True, False, False, True, False, False]


def test_the_proxy_is_the_model_rebuilt_with_its_arguments_or_a_copy():
    torch.manual_seed(0)
    model = cnnlab.create_model("airbench", widths="16,32,32", device="cpu")
    small = build_proxy(model, TrainConfig(hard_fraction=0.5, proxy_args={"widths": "8,16,16"}, data_init=False), None)
    assert small.net.block1.conv1.out_channels == 8 and model.net.block1.conv1.out_channels == 16
    rng = torch.get_rng_state()
    again = build_proxy(model, TrainConfig(hard_fraction=0.5, proxy_args={"widths": "8,16,16"}, data_init=False), None)
    assert torch.equal(rng, torch.get_rng_state())  # seeded on its own: the model's random stream is untouched
    assert all(torch.equal(a, b) for a, b in zip(small.net.parameters(), again.net.parameters()))
    twin = build_proxy(model, TrainConfig(hard_fraction=0.5), None)
    assert twin.net is not model.net
    assert all(torch.equal(a, b) for a, b in zip(twin.net.parameters(), model.net.parameters()))
    bare = as_classifier(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)))
    with pytest.raises(CnnlabError, match="--proxy-arg needs a registered model"):
        build_proxy(bare, TrainConfig(hard_fraction=0.5, proxy_args={"widths": "8,16,16"}), None)


@pytest.mark.parametrize("value", [0, 1.5, -0.5])
def test_a_hard_fraction_outside_zero_to_one_is_one_sentence(value):
    with pytest.raises(CnnlabError, match="--hard-fraction must be above 0 and at most 1"):
        TrainConfig(hard_fraction=value)


def test_fit_trains_on_the_hard_part_and_counts_every_image_drawn(tmp_path):
    data = load_dataset(str(shared("cifar10_test.npz"))).subset(range(400))
    run = cnnlab.train("airbench", data=data, epochs=1, batch_size=100, hard_fraction=0.5, val_split=0.25,
                       proxy_args={"widths": "4,8,8"}, model_kwargs={"widths": "8,16,16"}, progress=False,
                       out=tmp_path / "run", seed=2)
    (row,) = run.metrics()  # the caller's epochs=1, not the recipe's 12
    ckpt = torch.load(run.path / "checkpoints/last.pt", weights_only=True)
    assert ckpt["proxy"]["state_dict"]["block1.conv1.weight"].shape[0] == 4
    # 300 training images drawn in 3 batches of 100; the model trained on 50 of each
    assert row["images_per_s"] * row["epoch_s"] == pytest.approx(300)
    from cnnlab.train.settings import settings_lines
    assert ("optimizer     muon for the filters (lr 0.24, momentum 0.6), SGD for the rest (lr 2, Nesterov momentum "
            "0.85), weight decay 0.0005; frozen after: whiten.bias at epoch 3 (model's recipe: freeze_after, lr, "
            "momentum") in settings_lines(run.config["settings"])[2]
    assert run.config["settings"]["selection"] == ("the hardest 50% of each batch, by the loss of a proxy (the model "
                                                   "rebuilt with widths=4,8,8) that learns from every 4th batch")


@pytest.mark.parametrize("every, words", [(1, "every batch"), (2, "every 2nd batch"), (3, "every 3rd batch"),
                                          (11, "every 11th batch"), (22, "every 22nd batch")])
def test_the_run_header_says_how_the_batch_is_chosen(every, words):
    from cnnlab.train.settings import selection_text
    assert selection_text(TrainConfig()) is None
    assert selection_text(TrainConfig(hard_fraction=0.25, proxy_every=every)) == (
        f"the hardest 25% of each batch, by the loss of a proxy (a copy of the model) that learns from {words}")
