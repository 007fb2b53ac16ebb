"""Optimizers and schedules: Muon over convolution filters (torch.optim.Muon on matrix views), the
linear schedule and the end value of the triangle, parameters stopped after some epochs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.train import TrainConfig
from cnnlab.train.optim import (
    MUON_NS_STEPS,
    FilterMuon,
    Optimizers,
    build_optimizer,
    frozen_names,
    lr_factor,
    set_lr,
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return cnnlab.create_model("airbench", widths="8,16,16").net


def test_muon_takes_the_trainable_filters_and_sgd_the_rest():
    net = _net()
    net.whiten.weight.requires_grad_(False)
    opt = build_optimizer(net, TrainConfig(optimizer="muon", lr=0.5, muon_lr=0.2, weight_decay=5e-4))
    assert isinstance(opt, Optimizers)
    sgd, muon = opt.optimizers
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and isinstance(muon, FilterMuon)
    filters = {id(p) for p in muon.filters}
    want = {id(p) for p in net.parameters() if p.dim() == 4 and p.requires_grad}
    assert filters == want and id(net.whiten.weight) not in filters and len(filters) == 6
    assert all(g["weight_decay"] == 0.0 for g in muon.param_groups)  # the filters keep a fixed norm instead
    sgd_ids = {id(p) for g in sgd.param_groups for p in g["params"]}
    assert id(net.fc.weight) in sgd_ids and not sgd_ids & filters
    set_lr(opt, TrainConfig(optimizer="muon", lr=0.5, muon_lr=0.2, schedule="constant"), 0, 10)
    assert [g["lr"] for g in muon.param_groups] == [pytest.approx(0.2)] * len(muon.param_groups)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_muon_step_orthogonalizes_and_keeps_the_filter_norm(layout):
    torch.manual_seed(1)
    w = nn.Parameter(torch.randn(16, 8, 3, 3).contiguous(memory_format=layout))
    opt = FilterMuon([{"params": [w], "lr": 0.1}], momentum=0.6)
    w.grad = torch.randn(16, 8, 3, 3).contiguous(memory_format=layout)
    before = w.detach().clone() * (16 ** 0.5 / w.detach().norm())  # the norm it is scaled back to first
    opt.step()
    step = (before - w.detach()).reshape(16, -1) / 0.1
    s = torch.linalg.svdvals(step)
    assert 0.3 < float(s.min()) and float(s.max()) < 1.6  # all directions move about equally (3 Newton-Schulz steps)
    assert w.grad is not None  # the training loop clears gradients
    opt.zero_grad()
    assert w.grad is None


def test_muon_does_not_depend_on_the_memory_layout():
    torch.manual_seed(2)
    a = nn.Parameter(torch.randn(16, 8, 3, 3))
    b = nn.Parameter(a.detach().clone().contiguous(memory_format=torch.channels_last))
    g = torch.randn(16, 8, 3, 3)
    oa, ob = FilterMuon([{"params": [a], "lr": 0.1}], 0.6), FilterMuon([{"params": [b], "lr": 0.1}], 0.6)
    for _ in range(3):
        a.grad, b.grad = g.clone(), g.clone().contiguous(memory_format=torch.channels_last)
        oa.step()
        ob.step()
    assert torch.allclose(a.detach(), b.detach(), atol=1e-5)  # column order only changes float32 rounding


def test_muon_step_is_torchs_with_float32_orthogonalization_on_the_cpu():
    """Each step is torch.optim.Muon's (momentum, Nesterov, lr scaling, state), its Newton-Schulz iteration
    in float32 rather than bfloat16: within 1e-5 of a float64 reference, where torch's is ~1e-2 off."""
    torch.manual_seed(3)
    w = nn.Parameter(torch.randn(16, 8, 3, 3))
    ours = FilterMuon([{"params": [w], "lr": 0.1}], momentum=0.6)
    mat = nn.Parameter(w.detach().clone().reshape(16, -1))
    theirs = torch.optim.Muon([mat], lr=0.1, weight_decay=0.0, momentum=0.6, nesterov=True, ns_steps=MUON_NS_STEPS)
    exact = w.detach().double().reshape(16, -1).clone()
    buf = torch.zeros_like(exact)
    a, b, c = theirs.param_groups[0]["ns_coefficients"]
    for _ in range(3):
        g = torch.randn(16, 8, 3, 3)
        for p in (w, mat, exact):
            p.data.mul_(16 ** 0.5 / p.data.norm())  # FilterMuon's fixed filter norm, applied to all three
        w.grad, mat.grad = g.clone(), g.reshape(16, -1).clone()
        ours.step()
        theirs.step()
        gd = g.double().reshape(16, -1)  # the float64 reference of the same step
        buf.lerp_(gd, 0.4)
        x = gd.lerp(buf, 0.6)
        x = x / x.norm()
        for _ in range(MUON_NS_STEPS):
            gram = x @ x.T
            x = a * x + (b * gram + c * gram @ gram) @ x
        exact -= 0.1 * x
    err = float((w.detach().double().reshape(16, -1) - exact).abs().max())
    assert err < 1e-5
    assert 1e-4 < float((mat.detach().double() - exact).abs().max()) < 5e-2  # torch's bfloat16 iteration
    assert set(ours.state_dict()["state"][0]) == {"momentum_buffer"}  # the same state as torch's Muon


def test_optimizers_state_round_trips():
    net = _net()
    cfg = TrainConfig(optimizer="muon", lr=0.5)
    opt = build_optimizer(net, cfg)
    x = torch.randn(4, 3, 32, 32)
    net(x).sum().backward()
    opt.step()
    state = opt.state_dict()
    again = build_optimizer(net, cfg)
    again.load_state_dict(state)
    for o, p in zip(again.optimizers, opt.optimizers):
        for k, v in p.state_dict()["state"].items():
            assert torch.equal(o.state_dict()["state"][k]["momentum_buffer"], v["momentum_buffer"])
    with pytest.raises(ValueError):
        again.load_state_dict({"optimizers": state["optimizers"][:1]})


def test_linear_schedule_and_the_end_of_the_triangle():
    lin = TrainConfig(schedule="linear", epochs=10, lr_end=0.0)
    assert lr_factor(0, lin, 100) == 1.0 and lr_factor(500, lin, 100) == pytest.approx(0.5)
    assert lr_factor(1000, lin, 100) == pytest.approx(0.0)
    tri = TrainConfig(schedule="triangle", epochs=10, lr_end=0.07)
    assert lr_factor(0, tri, 100) == pytest.approx(0.2) and lr_factor(230, tri, 100) == pytest.approx(1.0)
    assert lr_factor(1000, tri, 100) == pytest.approx(0.07)
    assert lr_factor(1000, TrainConfig(schedule="triangle", epochs=10), 100) == pytest.approx(0.0)


def test_a_parameter_stopped_after_some_epochs_fades_then_freezes():
    net = _net()
    cfg = TrainConfig(lr=1.0, schedule="constant", freeze_after={"whiten.bias": 2}, bias_lr_mult=1.0)
    opt = build_optimizer(net, cfg)
    group = next(g for g in opt.param_groups if any(p is net.whiten.bias for p in g["params"]))
    assert group["stop_epoch"] == 2 and len(group["params"]) == 1
    set_lr(opt, cfg, 0, 10)
    assert group["lr"] == pytest.approx(1.0)
    set_lr(opt, cfg, 10, 10)
    assert group["lr"] == pytest.approx(0.5)
    set_lr(opt, cfg, 20, 10)
    assert group["lr"] == 0.0
    assert frozen_names(cfg, 1) == set() and frozen_names(cfg, 2) == {"whiten.bias"}
    with pytest.raises(CnnlabError, match="whiten.bais"):
        build_optimizer(net, TrainConfig(freeze_after={"whiten.bais": 1}))
    with pytest.raises(CnnlabError, match="positive"):
        TrainConfig(freeze_after={"whiten.bias": 0})
