"""The adversarial-training hook: adversaries for the fit loop, robust accuracy, the fgsm-rs guard."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab import attacks
from cnnlab.errors import CnnlabError
from tests.conftest import shared


def _tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, 10))


def _fit(x, y, adversary=None, epochs: int = 5) -> nn.Module:
    """A plain seeded training loop (the trainer calls the adversary the same way)."""
    model = _tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            b = perm[i:i + 64]
            xb, yb = x[b], y[b]
            if adversary is not None:
                xb = adversary(model, xb, yb)
                assert model.training and all(p.requires_grad for p in model.parameters())
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def cifar_split():
    d = np.load(shared("cifar10_test.npz"))
    idx = np.random.default_rng(1).permutation(len(d["y"]))
    x = torch.from_numpy(d["x"]).permute(0, 3, 1, 2)
    y = torch.from_numpy(d["y"].astype(np.int64))
    tr, te = idx[:512], idx[1000:1256]
    return x[tr].float() / 255, y[tr], x[te].float() / 255, y[te]


def test_adversarial_training_beats_normal_training_under_attack(cifar_split):
    xt, yt, xv, yv = cifar_split
    eps = 4 / 255
    plain = _fit(xt, yt)
    adversary = attacks.make_adversary("fgsm-rs", eps)
    robust = _fit(xt, yt, adversary)
    r_plain = attacks.robust_accuracy(plain, xv, yv, eps, steps=10)
    r_adv = attacks.robust_accuracy(robust, xv, yv, eps, steps=10)
    assert r_adv > r_plain + 0.04, (r_plain, r_adv)
    status = adversary.status()
    assert status["method"] == "fgsm-rs" and status["passes"] >= len(xt) * 5
    assert status["checks"], "the catastrophic-overfitting guard ran"


def test_pgd_adversary_stays_in_the_ball_and_raises_the_loss(resnet20, cifar_test_small):
    x, y = cifar_test_small
    x, y = x[:32], y[:32]
    adv = attacks.make_adversary("pgd", 2 / 255, steps=3)
    x_adv = adv(resnet20, x, y)
    assert float((x_adv - x).abs().max()) <= 2 / 255 + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    with torch.no_grad():
        assert nn.functional.cross_entropy(resnet20(x_adv), y) > nn.functional.cross_entropy(resnet20(x), y)


def test_robust_accuracy_is_clean_accuracy_at_eps_zero(resnet20, cifar_test_small):
    x, y = cifar_test_small
    x, y = x[:64], y[:64]
    clean = float((resnet20.probabilities(x).argmax(1) == y).float().mean())
    assert attacks.robust_accuracy(resnet20, x, y, 0.0, steps=2) == pytest.approx(clean)
    assert attacks.robust_accuracy(resnet20, x, y, 4 / 255, steps=5) < clean


def test_fgsm_rs_guard_switches_to_pgd_when_fgsm_accuracy_outruns_pgd(resnet20, cifar_test_small):
    x, y = cifar_test_small
    adv = attacks.make_adversary("fgsm-rs", 2 / 255)
    adv.gap = -1.0  # force the overfitting signal so the switch itself is exercised
    with pytest.warns(UserWarning, match="catastrophic overfitting"):
        adv(resnet20, x[:16], y[:16])
    assert adv.status()["catastrophic_overfitting"]
    x_adv = adv(resnet20, x[:16], y[:16])         # now 2-step PGD
    assert float((x_adv - x[:16]).abs().max()) <= 2 / 255 + 1e-6


def test_bad_adversary_arguments():
    with pytest.raises(CnnlabError, match="pgd, fgsm-rs"):
        attacks.make_adversary("fgsm-fast", 8 / 255)
    with pytest.raises(CnnlabError, match="outside"):
        attacks.make_adversary("pgd", 8.0)
    with pytest.raises(CnnlabError, match="positive"):
        attacks.make_adversary("pgd", 8 / 255, steps=0)
