"""Everyday transformations of adversarial images and the table of what survives them."""
from __future__ import annotations

import json

from cnnlab import attacks


def test_transformations_keep_shape_and_range(chelsea):
    for name, fn in attacks.TRANSFORMS.items():
        y = fn(chelsea)
        assert y.shape == chelsea.shape, name
        assert float(y.min()) >= 0 and float(y.max()) <= 1, name
    g = attacks.TRANSFORMS["grayscale"](chelsea)
    assert (g[:, 0] == g[:, 1]).all() and (g[:, 1] == g[:, 2]).all()
    assert (attacks.TRANSFORMS["hflip"](attacks.TRANSFORMS["hflip"](chelsea)) == chelsea).all()
    assert (attacks.TRANSFORMS["jpeg75"](chelsea) - chelsea).abs().mean() < 0.03
    assert (attacks.TRANSFORMS["blur"](chelsea) - chelsea).abs().mean() > 0.002


def test_robustness_table_of_cifar_attacks(resnet20, cifar_test_small, tmp_path):
    x, y = cifar_test_small
    r = attacks.pgd(resnet20, x[:2], 8 / 255, target="least-likely", steps=20)
    table = attacks.transform_robustness(resnet20, r)
    d = json.loads(json.dumps(table.to_dict()))
    assert len(d["rows"]) == 4 and d["rows"][1]["kind"] == "adversarial"
    assert d["rows"][1]["cells"]["none"]["is_target"]           # untransformed: still adversarial
    assert set(d["adversarial_survival"]) == set(attacks.TRANSFORMS)
    assert d["adversarial_survival"]["none"] == 1.0
    assert "| image |" in table.markdown()
    assert table.figure(tmp_path / "rob.png").stat().st_size > 1000
