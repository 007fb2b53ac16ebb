"""attack_eval on the real pretrained CIFAR-10 ResNet-20: one eps, a list of eps (robust accuracy against
eps), and what gradient-free methods report."""
from __future__ import annotations

import json
import re

import pytest

from cnnlab.attacks import AttackEval, RobustnessCurve, attack_eval
from cnnlab.errors import CnnlabError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(cifar_test_small):
    x, y = cifar_test_small
    return x[:48], y[:48]


def test_robust_accuracy_never_rises_with_eps(resnet20, data):
    curve = attack_eval(resnet20, data, "pgd", eps=[2 / 255, 0.5 / 255, 1 / 255], steps=5)
    assert isinstance(curve, RobustnessCurve)
    assert curve.eps == pytest.approx([0.5 / 255, 1 / 255, 2 / 255])                 # ascending
    acc = curve.robust_top1
    assert all(a >= b for a, b in zip(acc, acc[1:])) and acc[0] < curve.top1
    assert acc[-1] < acc[0]
    # the first eps attacks every correctly classified image, exactly as a single-eps evaluation does
    one = attack_eval(resnet20, data, "pgd", eps=0.5 / 255, steps=5)
    assert isinstance(one, AttackEval) and one.robust_top1 == acc[0] and one.top1 == curve.top1
    # a perturbation found at a smaller eps counts at the larger ones: norms stay inside each ball
    for p in curve.points:
        assert p.linf <= p.params["eps"] + 1e-6 and p.budget.startswith(f"eps {p.params['eps'] * 255:.3g}/255")
    d = json.loads(json.dumps(curve.to_dict()))
    assert d["robust_top1"] == acc and len(d["points"]) == 3
    lines = curve.lines()
    assert len(lines) == 4 and "0.5/255" in lines[1] and "forward+backward passes" in lines[1]


def test_minimal_perturbation_curve_from_one_deepfool_run(resnet20, data):
    data = (data[0][:16], data[1][:16])
    curve = attack_eval(resnet20, data, "deepfool", eps=[0.05, 0.1, 0.2], steps=20)
    acc = curve.robust_top1
    assert all(a >= b for a, b in zip(acc, acc[1:]))
    assert len({p.passes_per_image for p in curve.points}) == 1      # one run serves every eps
    unbounded = attack_eval(resnet20, data, "deepfool", steps=20)
    assert unbounded.robust_top1 <= acc[-1] and "minimal L2 perturbation" in unbounded.lines()[0]
    assert not re.search(r"\beps\b", unbounded.lines()[0])


def test_gradient_free_methods_count_queries_not_passes(resnet20, data):
    sq = attack_eval(resnet20, data, "square", eps=4 / 255, steps=20)
    text = "\n".join(sq.lines())
    assert "eps 4/255, up to 20 queries" in text and "queries per image" in text
    assert "forward+backward" not in text and "None" not in text
    sp = attack_eval(resnet20, (data[0][:8], data[1][:8]), "spatial", rotations=3, translations=1)
    text = "\n".join(sp.lines())
    assert not re.search(r"\beps\b", text.split("\n")[0]) and "None" not in text and "queries per image" in text


def test_bad_evaluations(resnet20, data):
    with pytest.raises(CnnlabError, match="not an evaluation attack"):
        attack_eval(resnet20, data, "logit-ascent")
    with pytest.raises(CnnlabError, match="has no eps"):
        attack_eval(resnet20, data, "spatial", eps=[1 / 255, 2 / 255])
    with pytest.raises(CnnlabError, match="outside"):
        attack_eval(resnet20, data, "pgd", eps=[2 / 255, 2.0])


@pytest.mark.device
def test_attack_evaluation_runs_on_the_models_device(resnet20, data, device):
    import copy
    res = attack_eval(resnet20, data, "pgd", eps=[2 / 255, 4 / 255], steps=5, batch_size=16, seed=1)
    ref = attack_eval(copy.deepcopy(resnet20).cpu(), data, "pgd", eps=[2 / 255, 4 / 255], steps=5, batch_size=16,
                      seed=1)
    assert resnet20.device == device and res.top1 == ref.top1 and res.points[0].passes_per_image > 0
    for a, b in zip(res.points, ref.points):  # the device's float rounding may move an image across the boundary
        assert abs(a.robust_top1 - b.robust_top1) <= 2 / 48
