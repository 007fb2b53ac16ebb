"""DeepFool on the real pretrained CIFAR-10 ResNet-20: smaller than PGD, at the decision boundary."""
from __future__ import annotations

import pytest
import torch

from cnnlab.attacks import attack, deepfool, minimal_perturbation, pgd
from cnnlab.errors import CnnlabError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
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
    with pytest.raises(CnnlabError, match="untargeted"):
        attack(resnet20, x[:2], "deepfool", target="cat")
