"""Issue 9 attacks on the real pretrained CIFAR-10 ResNet-20: DeepFool, Square, spatial, patch, fooling,
transfer (library level). CLI and torchattacks agreement live in test_attacks_more_cli.py / _ref.py."""
from __future__ import annotations

import pytest
import torch

from cnnlab.attacks import (adversarial_patch, deepfool, fooling_evolve, fooling_gradient, minimal_perturbation,
                            pgd, spatial_attack, spatial_eval, square, substitute_attack, transfer_attack)
from cnnlab.attacks.patch import patch_success
from cnnlab.attacks.spatial import rotate_translate
from cnnlab.errors import CnnlabError


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def correct(resnet20_correct):
    """The first 32 test images ResNet-20 classifies correctly."""
    return resnet20_correct


class NoGradient:
    """Fails the test if anything runs the model with autograd on (a forward that could be differentiated)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        self.handle = model.register_forward_pre_hook(self._check)

    def _check(self, module, args):  # noqa: ANN001
        assert not torch.is_grad_enabled(), "the model was run with gradients enabled"
        assert not any(a.requires_grad for a in args if isinstance(a, torch.Tensor)), "input requires grad"
        self.calls += 1

    def remove(self) -> None:
        self.handle.remove()


def test_deepfool_is_smaller_than_pgd_and_sits_at_the_boundary(resnet20, correct):
    x, y = correct
    df = deepfool(resnet20, x, y=y)
    assert df.success_rate >= 0.95
    assert df.label.tolist() == y.tolist()
    ok = df.success
    with torch.no_grad():  # the returned images really are misclassified
        assert (resnet20(df.images[ok]).argmax(1) != y[ok]).all()
    mp = minimal_perturbation(df)
    assert mp.n == len(x) and mp.fooled == int(ok.sum())
    assert df.params["median_l2"] == pytest.approx(mp.median_l2)
    # PGD-L2 at 0.5 and PGD-L-inf at 8/255: their successful perturbations are larger than DeepFool's
    p2 = pgd(resnet20, x, 0.5, norm="l2", steps=10, y=y)
    both = ok & p2.success
    assert both.sum() >= 20
    assert float(df.l2[both].median()) < float(p2.l2[both].median())
    dfi = deepfool(resnet20, x, y=y, norm="linf")
    pi = pgd(resnet20, x, 8 / 255, steps=10, y=y)
    both = dfi.success & pi.success
    assert float(dfi.linf[both].median()) < float(pi.linf[both].median())
    # at the boundary: half of DeepFool's perturbation leaves most images in their class
    with torch.no_grad():
        half = (x + 0.5 * (df.images - x)).clamp(0, 1)
        kept = (resnet20(half[ok]).argmax(1) == y[ok]).float().mean()
    assert kept >= 0.8


def test_deepfool_rejects_bad_options(resnet20, correct):
    x, y = correct
    with pytest.raises(CnnlabError):
        deepfool(resnet20, x[:2], norm="l1")
    from cnnlab.attacks import attack
    with pytest.raises(CnnlabError, match="untargeted"):
        attack(resnet20, x[:2], "deepfool", target="cat")


def test_square_succeeds_without_any_gradient(resnet20, correct):
    x, y = correct
    x, y = x[:16], y[:16]
    params = [p.requires_grad for p in resnet20.parameters()]
    guard = NoGradient(resnet20)
    try:
        r = square(resnet20, x, 8 / 255, queries=200, y=y, seed=0)
    finally:
        guard.remove()
    assert [p.requires_grad for p in resnet20.parameters()] == params  # restored
    assert guard.calls > 0
    assert r.success_rate >= 0.6
    assert float(r.linf.max()) <= 8 / 255 + 1e-6
    assert r.images.min() >= 0 and r.images.max() <= 1
    with torch.no_grad():
        assert (resnet20(r.images[r.success]).argmax(1) != y[r.success]).all()
    # queries: each image used at least one and at most the budget; successes report the mean
    assert int(r.steps.min()) >= 1 and int(r.steps.max()) <= 200
    assert r.params["queries_per_success"] == pytest.approx(float(r.steps[r.success].float().mean()))


def test_square_targeted(resnet20, correct):
    x, y = correct
    r = square(resnet20, x[:6], 16 / 255, queries=300, target="least-likely")
    assert r.targeted
    assert (r.final_class[r.success] == r.target[r.success]).all()
    assert r.success_rate >= 0.3


def test_spatial_attack_is_no_better_than_any_fixed_transform(resnet20, cifar_test_small):
    x, y = cifar_test_small
    x, y = x[:40], y[:40]
    assert torch.allclose(rotate_translate(x[:2], 0, 0, 0), x[:2], atol=1e-5)
    ev = spatial_eval(resnet20, x, y, rotations=7, translations=3)
    assert ev.grid_points == 63 and len(ev.per_transform) == 63
    assert ev.worst_acc <= min(t["acc"] for t in ev.per_transform) == ev.min_fixed_acc
    identity = [t for t in ev.per_transform if t["degrees"] == 0 and t["dx"] == 0 and t["dy"] == 0]
    assert identity and identity[0]["acc"] == pytest.approx(ev.clean_acc)
    assert ev.worst_acc < ev.clean_acc - 0.2  # a non-robust CIFAR model loses much of its accuracy
    r = spatial_attack(resnet20, x[:12], y=y[:12], rotations=7, translations=3)
    with torch.no_grad():
        assert (resnet20(r.images[r.success]).argmax(1) != y[:12][r.success]).all()
    for t in r.params["transforms"]:
        assert abs(t["degrees"]) <= 30 and abs(t["dx"]) <= 3 and abs(t["dy"]) <= 3


def test_patch_works_on_images_it_never_saw(resnet20, cifar_test_small):
    x, y = cifar_test_small
    target = 0  # airplane
    x = x[y != target]
    train, held = x[:48], x[48:96]
    res = adversarial_patch(resnet20, train, "airplane", x_test=held, area=0.15, steps=120, seed=0)
    assert res.target == 0 and res.patch.shape == (3, 12, 12)
    assert res.patch.min() >= 0 and res.patch.max() <= 1
    noise = torch.rand_like(res.patch)
    baseline = patch_success(resnet20, noise, held, target)
    assert res.heldout_success >= baseline + 0.2
    assert res.heldout_success >= 0.5 * res.train_success  # it generalizes, not memorizes
    d = res.to_dict()
    assert d["heldout_n"] == 48 and 0 <= d["heldout_success"] <= 1


def test_fooling_images_by_gradient_reach_99_percent(resnet20):
    res = fooling_gradient(resnet20, ["cat", 9], seed=0)
    assert res.targets == [3, 9]
    with torch.no_grad():
        p = torch.softmax(resnet20(res.images), 1)
    assert (p[torch.arange(2), torch.tensor([3, 9])] >= 0.99).all()
    assert res.success == [True, True]


def test_fooling_images_by_evolution_use_outputs_only(resnet20):
    guard = NoGradient(resnet20)
    try:
        res = fooling_evolve(resnet20, ["bird", "ship"], generations=150, seed=0)
    finally:
        guard.remove()
    with torch.no_grad():
        p = torch.softmax(resnet20(res.images), 1)
    assert (p[torch.arange(2), torch.tensor([2, 8])] >= 0.99).all()
    assert guard.calls * 32 >= sum(res.calls) - 64  # each query a real batch of 32
    assert res.images.std() > 0.05  # not a flat image


def test_plain_transfer_between_two_cnnlab_models(resnet20, correct):
    import cnnlab
    from tests.conftest import shared
    r32 = cnnlab.create_model("cifar_resnet32", weights=shared("weights/akamaster_cifar10_resnet32-d509ac18.th"))
    x, y = correct
    t = transfer_attack(resnet20, r32, x[:24], y[:24], eps=8 / 255, steps=10)
    assert t.source_success >= 0.95
    assert t.target_adv_acc < t.target_clean_acc - 0.3
    assert t.transfer_rate >= 0.4


def test_substitute_attack_never_differentiates_the_oracle(resnet20, cifar_test_small):
    """Papernot et al.'s pipeline: labels only from the oracle, Jacobian augmentation doubles the set each
    round, the substitute learns the oracle's labels, and the PGD images stay in the budget. (How well
    they transfer on this model is measured, not asserted: see benchmarks/results/attacks_more.md.)"""
    x, y = cifar_test_small
    x, y = x[:32], y[:32]
    guard = NoGradient(resnet20)
    try:
        sa = substitute_attack(resnet20, x, y=y, eps=8 / 255, rounds=2, epochs=4, seed=0)
    finally:
        guard.remove()
    r = sa.result
    assert r.method == "transfer" and float(r.linf.max()) <= 8 / 255 + 1e-6
    assert sa.substitute.queries == 32 * 2  # 32 seeds, doubled once
    assert [row["set_size"] for row in sa.substitute.rounds] == [32, 64]
    assert sa.substitute.rounds[-1]["agreement_on_seeds"] >= 0.8
    assert sa.substitute_success >= 0.5  # the white-box attack on the substitute itself works
    with torch.no_grad():  # success is judged on the oracle's own answers
        assert ((resnet20(r.images).argmax(1) != y) == r.success).all()
