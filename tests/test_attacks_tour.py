"""The attacks section of the tour (chelsea -> toaster, the untargeted descent) and the robustness table."""
from __future__ import annotations

import json

import torch

from cnnlab import attacks


def test_tour_section_forces_toaster_and_writes_figures(lite0, chelsea, tmp_path):
    d = attacks.tour_section(lite0, {"chelsea": chelsea}, tmp_path)
    json.dumps(d)
    assert d["forced"]["success"] and d["forced"]["final"]["label"] == "toaster"
    assert d["logit_descent"]["success"]
    assert d["logit_descent"]["final"]["index"] != d["logit_descent"]["original"]["index"]
    # why the probability version moves less: its gradient is smaller at the start
    assert d["prob_descent"]["grad_norms"][0] < d["logit_descent"]["grad_norms"][0]
    for path in d["figures"].values():
        assert (tmp_path / "figures").exists() and torch.tensor(len(open(path, "rb").read())) > 1000


def test_transformations_keep_shape_and_range(chelsea):
    for name, fn in attacks.TRANSFORMS.items():
        y = fn(chelsea)
        assert y.shape == chelsea.shape, name
        assert float(y.min()) >= 0 and float(y.max()) <= 1, name
    g = attacks.TRANSFORMS["grayscale"](chelsea)
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])
    assert torch.equal(attacks.TRANSFORMS["hflip"](attacks.TRANSFORMS["hflip"](chelsea)), chelsea)
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
