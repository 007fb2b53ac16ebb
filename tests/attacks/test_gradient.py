"""Attacks on the real pretrained CIFAR-10 ResNet-20: invariants, targets, strength order, results as data."""
from __future__ import annotations

import json

import pytest
import torch

from cnnlab import attacks
from cnnlab.errors import CnnlabError


@pytest.fixture(scope="module")
def batch(cifar_test_small, resnet20):
    """64 test images the model classifies correctly, with their labels."""
    x, y = cifar_test_small
    ok = resnet20.probabilities(x).argmax(1) == y
    return x[ok][:64], y[ok][:64]


@pytest.mark.parametrize("method,kw", [
    ("fgsm", {}), ("bim", {"steps": 4}), ("pgd", {"steps": 4}), ("apgd", {"steps": 6})])
def test_linf_attacks_stay_in_the_ball_and_in_range(resnet20, batch, method, kw):
    x, y = batch
    eps = 2 / 255
    r = getattr(attacks, method)(resnet20, x, eps, y=y, **kw)
    assert r.images.shape == x.shape
    assert float(r.linf.max()) <= eps + 1e-6
    assert float(r.images.min()) >= 0 and float(r.images.max()) <= 1
    assert torch.equal(r.originals, x)
    assert 0.3 < r.success_rate <= 1.0            # a real attack at 2/255 on an undefended model
    # success is what the model says about the returned images
    pred = resnet20.probabilities(r.images).argmax(1)
    assert torch.equal(pred != y, r.success)
    assert torch.equal(pred, r.final_class)


def test_l2_attacks_stay_in_the_ball(resnet20, batch):
    x, y = batch
    for fn in (attacks.pgd, attacks.apgd):
        r = fn(resnet20, x[:32], 0.25, norm="l2", y=y[:32], steps=10)
        assert float(r.l2.max()) <= 0.25 + 1e-4
        assert float(r.images.min()) >= 0 and float(r.images.max()) <= 1
        assert r.success_rate > 0.5


def test_fgsm_moves_every_unclipped_pixel_by_eps(resnet20, batch):
    x, y = batch
    r = attacks.fgsm(resnet20, x[:8], 4 / 255, y=y[:8])
    d = r.perturbations.abs()
    inside = (r.images > 1e-6) & (r.images < 1 - 1e-6)
    assert torch.allclose(d[inside], torch.full_like(d[inside], 4 / 255), atol=1e-5)
    assert r.passes == 8 and (r.steps == 1).all()


def test_pgd_is_at_least_as_strong_as_fgsm(resnet20, batch):
    x, y = batch
    f = attacks.fgsm(resnet20, x, 1 / 255, y=y)
    p = attacks.pgd(resnet20, x, 1 / 255, y=y, steps=10)
    assert p.success_rate >= f.success_rate
    assert p.success_rate > 0.8


def test_apgd_at_least_matches_pgd_on_a_small_budget(resnet20, batch):
    x, y = batch
    p = attacks.pgd(resnet20, x[:32], 0.5 / 255, y=y[:32], steps=10)
    a = attacks.apgd(resnet20, x[:32], 0.5 / 255, y=y[:32], steps=10)
    assert a.success_rate >= p.success_rate - 0.03


@pytest.mark.parametrize("target", ["cat", 3, "least-likely", "random"])
def test_targeted_pgd_reaches_the_target(resnet20, batch, target):
    x, y = batch
    x, y = x[:24], y[:24]
    if target in ("cat", 3):  # only images that are not cats already
        x, y = x[y != 3], y[y != 3]
    r = attacks.pgd(resnet20, x, 8 / 255, target=target, steps=20)
    assert r.target is not None
    if target == "random":
        assert (r.target != r.original_class).all()
    if target == "least-likely":
        assert torch.equal(r.target, resnet20.probabilities(x).argmin(1))
    assert r.success_rate >= 0.95
    pred = resnet20.probabilities(r.images).argmax(1)
    assert torch.equal(pred[r.success], r.target[r.success])


def test_seeded_runs_repeat_and_seeds_differ(resnet20, batch):
    x, y = batch
    a = attacks.pgd(resnet20, x[:16], 1 / 255, y=y[:16], seed=3)
    b = attacks.pgd(resnet20, x[:16], 1 / 255, y=y[:16], seed=3)
    c = attacks.pgd(resnet20, x[:16], 1 / 255, y=y[:16], seed=4)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)


def test_early_stop_costs_less_and_finds_as_many(resnet20, batch):
    x, y = batch
    full = attacks.pgd(resnet20, x, 1 / 255, y=y, steps=10, early_stop=False)
    early = attacks.pgd(resnet20, x, 1 / 255, y=y, steps=10)
    assert early.success_rate >= full.success_rate
    assert early.passes < full.passes == 10 * len(x)


def test_model_mode_and_parameters_are_restored(resnet20, batch):
    x, y = batch
    resnet20.train()
    try:
        before = {n: p.requires_grad for n, p in resnet20.named_parameters()}
        running = resnet20.net.bn1.running_mean.clone()
        attacks.pgd(resnet20, x[:8], 2 / 255, y=y[:8], steps=3)
        assert resnet20.training
        assert before == {n: p.requires_grad for n, p in resnet20.named_parameters()}
        assert torch.equal(running, resnet20.net.bn1.running_mean)  # attacked in eval mode: BN untouched
    finally:
        resnet20.eval()


def test_result_is_json_data(resnet20, batch):
    x, y = batch
    r = attacks.pgd(resnet20, x[:3], 2 / 255, y=y[:3], steps=5)
    from cnnlab.runs import json_text
    d = json.loads(json_text(r.to_dict()), parse_constant=lambda c: pytest.fail(f"bare {c} in the JSON"))
    assert d["n"] == 3 and len(d["images"]) == 3
    one = d["images"][0]
    assert {"success", "steps", "original", "final", "linf", "l2", "trajectory"} <= set(one)
    assert one["original"]["label"] in resnet20.labels
    assert abs(one["linf"] - float(r.linf[0])) < 1e-6
    assert one["trajectory"][0]["step"] == 0
    full = attacks.pgd(resnet20, x[:1], 2 / 255, y=y[:1], steps=5, early_stop=False)
    last = json.loads(json_text(full.to_dict()))["trajectory"][-1]  # no gradient at the last step: null, and why
    assert last["step"] == 5 and last["grad_norm"] is None and "no gradient" in last["grad_norm_null"]


def test_pgd_random_start_is_not_shown_as_the_original(resnet20, batch):
    x, y = batch
    r = attacks.pgd(resnet20, x[:4], 8 / 255, y=y[:4], steps=3, early_stop=False)
    rows = r.to_dict()["images"]
    for i, row in enumerate(rows):
        seen = row["classes_seen"]
        assert seen[0] == {"step": None, "at": "original", "index": int(r.original_class[i]),
                           "label": r.name_of(int(r.original_class[i]))}
        assert row["trajectory"][0]["at"] == "random start" and all(c["at"] != "original" for c in seen[1:])
        # step 0 is the random start: its probability is not the original's
        assert row["trajectory"][0]["prob"] != row["original"]["prob"]
    plain = attacks.attack(resnet20, x[:1], "logit-descent", steps=2).to_dict()["images"][0]
    assert plain["trajectory"][0]["at"] == "original"


def test_logit_descent_changes_the_label_and_records_why_prob_descent_stalls(resnet20, batch):
    x, y = batch
    probs = resnet20.probabilities(x)
    i = int(probs.amax(1).argmax())                   # the most confident image
    assert float(probs[i].max()) > 0.99
    lg = attacks.logit_descent(resnet20, x[i:i + 1], steps=50)
    pr = attacks.prob_descent(resnet20, x[i:i + 1], steps=5)
    assert bool(lg.success[0]) and int(lg.first_success[0]) == int(lg.steps[0]) >= 1
    t = lg.to_dict()
    assert t["trajectory"][-1]["class"] != t["trajectory"][0]["class"]
    assert [c["index"] for c in t["images"][0]["classes_seen"]][0] == int(y[i])
    # the probability's gradient is orders of magnitude smaller at a confident prediction
    assert pr.trajectory[0][0]["grad_norm"] < 1e-2 * lg.trajectory[0][0]["grad_norm"]
    assert float(pr.l2[0]) < float(lg.l2[0])


def test_no_early_stop_runs_all_steps(resnet20, batch):
    x, _ = batch
    r = attacks.attack(resnet20, x[:1], "logit-descent", steps=6, early_stop=False)
    assert int(r.steps[0]) == 6 and len(r.trajectory[0]) == 7


def test_no_early_stop_reports_the_step_where_the_label_first_changed(resnet20, batch):
    x, _ = batch
    r = attacks.attack(resnet20, x[:1], "logit-descent", steps=40, early_stop=False)
    first = int(r.first_success[0])
    changed = next(s["step"] for s in r.trajectory[0] if s["class"] != int(r.original_class[0]))
    assert int(r.steps[0]) == 40 and 1 <= first == changed < 40
    assert r.verdict(0).startswith(f"fooled after {first} step") and "ran all 40" in r.verdict(0)
    assert r.to_dict()["images"][0]["first_success_step"] == first
    assert r.params["early_stop"] is False
    with pytest.raises(CnnlabError, match="no early-stop choice"):
        attacks.attack(resnet20, x[:1], "fgsm", early_stop=False)


def test_logit_ascent_forces_a_class_inside_an_eps_ball(resnet20, batch):
    x, y = batch
    j = int((y != 8).nonzero()[0, 0])
    r = attacks.logit_ascent(resnet20, x[j:j + 1], "ship", eps=8 / 255, steps=50)
    assert bool(r.success[0]) and int(r.final_class[0]) == 8
    assert float(r.linf[0]) <= 8 / 255 + 1e-6


# -- bad input ------------------------------------------------------------------------------------
def test_bad_eps_and_steps(resnet20, batch):
    x, y = batch
    with pytest.raises(CnnlabError, match=r"outside \[0, 1\]"):
        attacks.pgd(resnet20, x[:2], 1.5)
    with pytest.raises(CnnlabError, match="outside"):
        attacks.fgsm(resnet20, x[:2], -0.1)
    with pytest.raises(CnnlabError, match="positive whole number"):
        attacks.pgd(resnet20, x[:2], 2 / 255, steps=0)


def test_unknown_target_suggests_close_names(resnet20, batch):
    x, _ = batch
    with pytest.raises(CnnlabError, match="did you mean: cat"):
        attacks.pgd(resnet20, x[:2], target="cta")


def test_target_equal_to_current_class_is_refused(resnet20, batch):
    x, y = batch
    with pytest.raises(CnnlabError, match="already classified as"):
        attacks.pgd(resnet20, x[:1], target=int(y[0]))


def test_images_the_model_cannot_take(resnet20, batch):
    x, _ = batch
    with pytest.raises(CnnlabError, match=r"\[N,3,H,W\]"):
        attacks.pgd(resnet20, x[:2, :1])
    with pytest.raises(CnnlabError, match=r"\[0,1\]"):
        attacks.pgd(resnet20, x[:2] * 255)
    with pytest.raises(CnnlabError, match="too small"):
        attacks.pgd(resnet20, x[:2, :, :4, :4])
    with pytest.raises(CnnlabError, match="unknown attack method|Unknown attack method"):
        attacks.attack(resnet20, x[:2], "pgdd")
