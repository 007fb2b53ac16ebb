"""Black-box attacks through another model, on the real pretrained CIFAR-10 ResNets: plain transfer and
Papernot et al.'s substitute attack (labels only from the oracle)."""
from __future__ import annotations

import pytest
import torch

import cnnlab
from cnnlab.attacks import substitute_attack, transfer_attack
from tests.conftest import shared

from .conftest import NoGradient

pytestmark = pytest.mark.usefixtures("one_thread")


def test_plain_transfer_between_two_cnnlab_models(resnet20, correct):
    r32 = cnnlab.create_model("cifar_resnet32", weights=shared("weights/akamaster_cifar10_resnet32-d509ac18.th"))
    x, y = correct
    t = transfer_attack(resnet20, r32, x[:24], y[:24], eps=8 / 255, steps=10)
    assert t.source_success >= 0.95
    assert t.target_robust_top1 < t.target_top1 - 0.3
    assert t.transfer_rate >= 0.4
    assert t.params["source"] == "cifar_resnet20" and t.params["target"] == "cifar_resnet32"


@pytest.mark.slow
def test_substitute_attack_never_differentiates_the_oracle(resnet20, cifar_test_small):
    """Papernot et al.'s pipeline: labels only from the oracle, Jacobian augmentation doubles the set each
    round, the substitute learns the oracle's labels, and the PGD images stay in the budget. (How well
    they transfer on this model is measured, not asserted: see benchmarks/results/attacks_catalogue.md.)"""
    x, y = cifar_test_small
    x, y = x[:16], y[:16]
    with NoGradient(resnet20):
        sa = substitute_attack(resnet20, x, y=y, eps=8 / 255, rounds=2, epochs=4, seed=0, min_updates=100)
    r = sa.result
    assert r.method == "transfer" and float(r.linf.max()) <= 8 / 255 + 1e-6
    assert sa.substitute.queries == 16 * 2  # 16 seeds, doubled once
    assert [row["set_size"] for row in sa.substitute.rounds] == [16, 32]
    assert r.passes == sa.substitute.queries + 2 * 16  # the oracle's labels of x and of the adversarial images
    assert sa.substitute.rounds[-1]["agreement_on_seeds"] >= 0.8
    assert sa.substitute_success >= 0.5  # the white-box attack on the substitute itself works
    with torch.no_grad():  # success is judged on the oracle's own answers
        assert ((resnet20(r.images).argmax(1) != y) == r.success).all()


def test_substitute_works_small_reports_progress_and_refuses_one_image(resnet20, cifar_test_small):
    from cnnlab.errors import CnnlabError
    x, y = cifar_test_small
    rows = []
    sa = substitute_attack(resnet20, x[:4], y=y[:4], rounds=2, epochs=1, size=16, min_updates=5, steps=2,
                           progress=rows.append)
    assert sa.substitute.model.net.size == 16 and sa.result.params["size"] == 16
    assert [(r["round"], r["rounds"], r["set_size"]) for r in rows] == [(0, 2, 4), (1, 2, 8)]
    assert all(r["seconds"] >= 0 for r in rows) and float(sa.result.linf.max()) <= 8 / 255 + 1e-6
    with pytest.raises(CnnlabError, match="1 image is too few: give at least 2"):
        substitute_attack(resnet20, x[:1])


def test_cli_transfer_options_progress_and_refusals(tmp_path, cifar_test_small):
    import json

    from click.testing import CliRunner

    from cnnlab.cli import main
    from cnnlab.images import save_image
    from tests.conftest import shared
    x, _ = cifar_test_small
    pngs = [str(save_image(x[i], tmp_path / f"{i}.png")) for i in range(2)]
    model = ["--model", "cifar_resnet20", "--weights", str(shared("weights/akamaster_cifar10_resnet20-12fca82f.th"))]
    r = CliRunner().invoke(main, ["attack", *pngs, *model, "--method", "transfer", "--substitute-rounds", "1",
                                  "--substitute-epochs", "1", "--steps", "2", "--no-robustness", "--out",
                                  str(tmp_path / "t")])
    assert r.exit_code == 0, r.output
    assert "substitute round 1/1: 2 images" in r.output
    params = json.loads((tmp_path / "t" / "attack.json").read_text())["params"]
    assert (params["rounds"], params["epochs"], params["size"]) == (1, 1, 32)
    one = CliRunner().invoke(main, ["attack", pngs[0], *model, "--method", "transfer", "--out", str(tmp_path / "o")])
    assert one.exit_code == 1 and "1 image is too few" in one.output and "seeds=" not in one.output
    other = CliRunner().invoke(main, ["attack", pngs[0], *model, "--substitute-size", "16", "--out", str(tmp_path / "p")])
    assert other.exit_code == 1 and "drop it for --method pgd" in other.output
