"""The attack registry: one entry per attack, and the CLI and the explorer offer exactly what it holds."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cnnlab.attacks import ATTACKS, AttackResult, AttackSpec, attack_spec, fgsm, method_names
from cnnlab.attacks.registry import OPTIONS, Options, register
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from tests.conftest import shared

KINDS = {"gradient", "minimal-perturbation", "query-black-box", "spatial", "substitute"}


def test_every_attack_is_registered_once_with_its_rules_and_defaults():
    assert list(ATTACKS) == method_names()
    assert {"fgsm", "bim", "pgd", "pgd-l2", "apgd", "apgd-l2", "deepfool", "deepfool-linf", "square", "spatial",
            "transfer", "logit-descent", "prob-descent", "logit-ascent", "prob-ascent"} <= set(ATTACKS)
    for name, spec in ATTACKS.items():
        assert spec.name == name and spec.kind in KINDS and spec.target in ("needs", "refuses", "allows")
        assert spec.norm in (None, "linf", "l2") and set(spec.options) <= set(OPTIONS) and spec.description
        if spec.takes("eps"):
            assert spec.eps is not None or spec.target == "needs"  # the ascent exercises: no ball unless asked
        assert (spec.early_stop is not None) == spec.takes("early_stop")
        json.dumps(spec.to_dict())
    assert ATTACKS["pgd"].early_stop is True and ATTACKS["bim"].early_stop is False
    assert ATTACKS["logit-descent"].early_stop is True          # the exercise stops at the first change
    assert ATTACKS["square"].steps_unit == "queries" and ATTACKS["square"].cost_unit == "queries"
    assert not ATTACKS["logit-ascent"].evaluable and ATTACKS["deepfool-linf"].evaluable
    with pytest.raises(ValueError, match="registered twice"):
        register(dataclasses.replace(ATTACKS["pgd"]))
    with pytest.raises(CnnlabError, match="did you mean: pgd"):
        attack_spec("pgdd")


def test_the_explorer_offers_the_registry():
    from cnnlab.serve.adapters import attack_methods
    offered = attack_methods()
    assert [m["name"] for m in offered] == list(ATTACKS)
    df = next(m for m in offered if m["name"] == "deepfool-linf")
    assert df["takes_target"] is False and df["kind"] == "minimal-perturbation"
    assert next(m for m in offered if m["name"] == "logit-ascent")["needs_target"] is True


def test_help_lists_every_registered_method():
    r = CliRunner().invoke(main, ["attack", "--help"], terminal_width=200)
    assert r.exit_code == 0
    for name in ATTACKS:
        assert f"\n  {name} " in r.output, name
    r = CliRunner().invoke(main, ["attack-eval", "--help"], terminal_width=200)
    for name, spec in ATTACKS.items():
        assert (f"\n  {name} " in r.output) == spec.evaluable, name
    assert "deepfool-linf" in r.output


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two CIFAR test images as PNG files and a 12-image .npz in the cifar10_test layout."""
    d = np.load(shared("cifar10_test.npz"))
    idx = np.random.default_rng(0).permutation(len(d["y"]))[:12]
    tmp = tmp_path_factory.mktemp("registry_cli")
    np.savez(tmp / "small.npz", x=d["x"][idx], y=d["y"][idx])
    pngs = []
    for k in range(2):
        Image.fromarray(d["x"][idx[k]]).save(tmp / f"img{k}.png")
        pngs.append(str(tmp / f"img{k}.png"))
    return {"pngs": pngs, "npz": str(tmp / "small.npz"), "tmp": tmp,
            "model": ["--model", "cifar_resnet20", "--weights", str(shared("weights/akamaster_cifar10_resnet20-"
                                                                             "12fca82f.th"))]}


@pytest.fixture
def recorded(monkeypatch, resnet20):
    """Every registered attack replaced by a quick FGSM that records the options it was called with; the
    CLI gets the loaded model and skips writing figures (what is tested here is which options it passes)."""
    calls: dict[str, Options] = {}

    def save_attack(result: AttackResult, model: torch.nn.Module, out: str, **kw: object) -> dict:
        doc = result.to_dict()
        for row in doc["images"]:
            row["png_still_adversarial"] = True
        return {**doc, "json": f"{out}/attack.json", "figures": {}}

    monkeypatch.setattr("cnnlab.cli.attack.load_cli_model", lambda *args, **kw: resnet20)
    monkeypatch.setattr("cnnlab.attacks.save_attack", save_attack)

    def stub(name: str) -> Callable[..., AttackResult]:
        def run(model: torch.nn.Module, x: torch.Tensor, options: Options, **kw: object) -> AttackResult:
            calls[name] = options
            return fgsm(model, x, 1 / 255, y=options.y)
        return run

    for name, spec in list(ATTACKS.items()):
        monkeypatch.setitem(ATTACKS, name, dataclasses.replace(spec, run=stub(name)))
    return calls


def test_the_cli_accepts_every_registered_method_with_its_defaults(files, recorded):
    for name, spec in ATTACKS.items():
        target = ["--target", "least-likely"] if spec.target == "needs" else []
        r = CliRunner().invoke(main, ["attack", files["pngs"][0], *files["model"], "--method", name, *target,
                                      "--no-robustness", "--out", str(files["tmp"] / f"a-{name}")])
        assert r.exit_code == 0, (name, r.output)
        opts = recorded[name]
        assert (opts.eps, opts.steps, opts.step_size, opts.early_stop) == \
            (spec.eps, spec.steps, spec.step_size, spec.early_stop), name
    for name in method_names(evaluable=True):
        r = CliRunner().invoke(main, ["attack-eval", *files["model"], "--data", files["npz"], "--method", name])
        assert r.exit_code == 0, (name, r.output)
    r = CliRunner().invoke(main, ["attack-eval", *files["model"], "--data", files["npz"], "--method", "logit-descent"])
    assert r.exit_code == 1 and "not an evaluation attack" in r.output


def test_early_stop_flag_reaches_the_attack(files, recorded):
    r = CliRunner().invoke(main, ["attack", files["pngs"][0], *files["model"], "--method", "pgd", "--no-early-stop",
                                  "--no-robustness", "--out", str(files["tmp"] / "es")])
    assert r.exit_code == 0, r.output
    assert recorded["pgd"].early_stop is False
    r = CliRunner().invoke(main, ["attack", files["pngs"][0], *files["model"], "--method", "square", "--early-stop",
                                  "--out", str(files["tmp"] / "es2")])
    assert r.exit_code == 1 and "no early-stop choice" in r.output


def test_a_new_attack_is_offered_once_registered(monkeypatch, files):
    spec = AttackSpec("fgsm-half", kind="gradient", norm="linf", target="allows", options=("eps",), eps=4 / 255,
                      description="FGSM at half the budget",
                      run=lambda m, x, o, **kw: fgsm(m, x, o.eps / 2, y=o.y, target=o.target))
    monkeypatch.setitem(ATTACKS, spec.name, spec)
    r = CliRunner().invoke(main, ["attack-eval", *files["model"], "--data", files["npz"], "--method", "fgsm-half",
                                  "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["params"]["eps"] == pytest.approx(4 / 255)
