"""The attacks section of the tour: chelsea forced to 'toaster', the untargeted descent on her class."""
from __future__ import annotations

import json

import torch

from cnnlab.attacks.tour import tour_section


def test_tour_section_forces_toaster_and_writes_figures(lite0, chelsea, tmp_path):
    d = tour_section(lite0, {"chelsea": chelsea}, tmp_path)
    json.dumps(d)
    assert d["forced"]["success"] and d["forced"]["final"]["label"] == "toaster"
    assert d["logit_descent"]["success"]
    assert d["logit_descent"]["final"]["index"] != d["logit_descent"]["original"]["index"]
    # why the probability version moves less: its gradient is smaller at the start
    assert d["prob_descent"]["grad_norms"][0] < d["logit_descent"]["grad_norms"][0]
    for path in d["figures"].values():
        assert (tmp_path / "figures").exists() and torch.tensor(len(open(path, "rb").read())) > 1000
