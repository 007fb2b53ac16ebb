"""UnfoldConv2d: hand-written backward == PyTorch's (gradcheck, grids, real models, real training)."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.reference import UnfoldConv2d, UnfoldConv2dFunction, convert_to_unfold, unfold_conv
from cnnlab.reference.checks import SHAPE_GRID, conv_grid_errors, model_errors


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("shape", SHAPE_GRID, ids=lambda s: "x".join(map(str, s[:4])) + f"-k{s[5]}s{s[6]}p{s[7]}")
def test_gradcheck_float64(shape, layout):
    n, cin, h, w, cout, k, s, p, bias = shape
    kh, kw = (k, k) if isinstance(k, int) else k
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, cin, h, w, dtype=torch.float64, generator=g)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    weight = torch.randn(cout, cin, kh, kw, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(cout, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    inputs = (x, weight, b) if bias else (x, weight)
    assert torch.autograd.gradcheck(lambda *t: UnfoldConv2dFunction.apply(t[0], t[1], t[2] if bias else None, s, p),
                                    inputs)


def test_outputs_and_three_gradients_equal_pytorchs():
    rows = conv_grid_errors(gradcheck=False)
    assert [r.name.split(" (")[0] for r in rows] == ["conv forward", "conv dX", "conv dW", "conv db"]
    for r in rows:
        assert r.ok and r.max_abs_error < 1e-12 * max(1, r.scale), r


@pytest.mark.parametrize("stride", [1, 2])  # channels-last: dX as a flipped-kernel product (1) or by fold (2)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_chunked_unfolding_gives_the_same_numbers(monkeypatch, layout, stride):
    torch.manual_seed(0)
    x = torch.randn(7, 5, 13, 11).contiguous(memory_format=layout).requires_grad_()
    conv = UnfoldConv2d(5, 6, 3, stride, 1)
    results = []
    for chunk in (0, 1, 3 * 45 * 42 * 4):  # whole batch, one image at a time, three images at a time
        monkeypatch.setattr(unfold_conv, "CHUNK_BYTES", chunk)
        monkeypatch.setattr(unfold_conv, "NCHW_CHUNK_BYTES", chunk)
        x.grad = None
        conv.zero_grad()
        y = conv(x)
        (y * torch.arange(y.numel()).view_as(y).sin()).sum().backward()
        results.append([y.detach(), x.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone()])
    ref = nn.Conv2d(5, 6, 3, stride, 1)
    ref.load_state_dict(conv.state_dict())
    x2 = x.detach().clone().requires_grad_()
    y = ref(x2)
    (y * torch.arange(y.numel()).view_as(y).sin()).sum().backward()
    results.append([y.detach(), x2.grad, ref.weight.grad, ref.bias.grad])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # channels-last in, channels-last out (the layout `cnnlab train` uses)
    assert results[0][0].is_contiguous(memory_format=layout)


def test_frozen_weights_channels_last_and_empty_batches():
    torch.manual_seed(0)
    conv = UnfoldConv2d(3, 4, 3, 1, 1)
    ref = nn.Conv2d(3, 4, 3, 1, 1)
    ref.load_state_dict(conv.state_dict())
    conv.requires_grad_(False)
    ref.requires_grad_(False)
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    conv(x).pow(2).sum().backward()
    ref(x2).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    assert conv(torch.zeros(0, 3, 8, 8)).shape == (0, 4, 8, 8)


def test_pretrained_resnet20_converted_gives_the_same_logits_and_gradients(resnet20, cifar_test_small):
    x, y = cifar_test_small
    rows = model_errors(resnet20, x[:64], y[:64])
    assert {r.name.split(" (")[0].split(",")[0] for r in rows} >= {"model logits", "model dX", "model dW"}
    for r in rows:
        assert r.ok, r
    assert "19 convs converted" in rows[0].note


def test_convert_to_unfold_shares_parameters_and_keeps_checkpoints_loadable(resnet20):
    model = copy.deepcopy(resnet20)
    before = {n: p for n, p in model.named_parameters()}
    keys = list(model.state_dict())
    assert convert_to_unfold(model.net) == 19
    assert convert_to_unfold(model.net) == 0  # already converted
    assert all(isinstance(m, UnfoldConv2d) for m in model.modules() if isinstance(m, nn.Conv2d))
    assert list(model.state_dict()) == keys
    assert all(p is before[n] for n, p in model.named_parameters())  # an optimizer built before still works
    model.load_state_dict(resnet20.state_dict())


def test_convert_to_unfold_skips_depthwise_and_asymmetric_same_padding_saying_which(lite0):
    model = copy.deepcopy(lite0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        n = convert_to_unfold(model.net)
    assert n == 32  # 15 expand + 16 project 1x1 convs + the head; not the 16 depthwise nor the stride-2 stem
    msg = str(caught[0].message)
    assert "'_conv_stem'" in msg and "groups=" in msg and "asymmetric" in msg
    x = torch.rand(1, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), lite0(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(CnnlabError, match="kept 17 convolution"):
        convert_to_unfold(copy.deepcopy(lite0).net, strict=True)
    with pytest.raises(CnnlabError, match="pass the model that contains"):
        convert_to_unfold(nn.Conv2d(3, 3, 3))


def test_from_conv_handles_same_padding():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 5, padding="same")
    ours = UnfoldConv2d.from_conv(conv)
    x = torch.randn(2, 3, 9, 10)
    torch.testing.assert_close(ours(x), conv(x))
    with pytest.raises(CnnlabError, match="dilation"):
        UnfoldConv2d.from_conv(nn.Conv2d(3, 5, 3, dilation=2))


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int) -> list[float]:
    """Plain SGD with momentum over a fixed data order: the loss of every step."""
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    losses = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def _snapshots(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int) -> list[tuple]:
    """Train like `_train`, keeping (parameters, batch indices) before every step."""
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    snaps = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            snaps.append(({k: v.detach().clone() for k, v in model.state_dict().items()}, idx))
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return snaps


def test_training_with_the_custom_conv_follows_the_same_loss_curve(cifar_test_small):
    """float64: the whole 24-step training run is equal. float32: at every point of that run, the
    loss and every gradient equal the native convolution's to float32 rounding (each step is compared
    from the same weights, so rounding is not amplified by training's chaos); the free-running float32
    curves stay as close as PyTorch's own NCHW and channels-last curves, within a factor of five."""
    x, y = cifar_test_small  # 256 real CIFAR-10 test images, 3 epochs of 8 steps
    torch.manual_seed(0)
    base = cnnlab.create_model("simple_cnn_bn", channels=16)
    curves, params = {}, {}
    for dtype, layout in [(torch.float64, torch.contiguous_format), (torch.float32, torch.contiguous_format),
                          (torch.float32, torch.channels_last)]:
        xs = x.to(dtype).contiguous(memory_format=layout)
        for kind in ("native", "unfold"):
            model = copy.deepcopy(base).to(dtype).to(memory_format=layout)
            if kind == "unfold":
                assert convert_to_unfold(model.net) == 2
            curves[dtype, layout, kind] = _train(model, xs, y, epochs=3, batch=32)
            params[dtype, layout, kind] = list(model.parameters())

    def gap(a, b):
        return max(abs(p - q) for p, q in zip(curves[a], curves[b]))
    f64, f32, cl = (torch.float64, torch.contiguous_format), (torch.float32, torch.contiguous_format), \
        (torch.float32, torch.channels_last)
    a = curves[(*f32, "native")]
    assert len(a) == 24 and a[-1] < a[0] - 0.2  # it really learns
    assert gap((*f64, "native"), (*f64, "unfold")) < 1e-10
    for p, q in zip(params[(*f64, "native")], params[(*f64, "unfold")]):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-10)

    # float32, one step at a time from the float64 run's weights: the loss equals native's to rounding,
    # and the gradients are as close to float64's as native float32's are (median over the steps; a step
    # where a max-pool or ReLU sits on a tie may differ in both, so a few such steps are allowed)
    snaps = _snapshots(copy.deepcopy(base).to(torch.float64), x.double(), y, epochs=3, batch=32)
    truth = copy.deepcopy(base).to(torch.float64)

    def step(model: nn.Module, state: dict, xb: torch.Tensor, yb: torch.Tensor) -> tuple[float, list]:
        model.load_state_dict({k: v.to(xb.dtype) for k, v in state.items()})
        model.train()
        model.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        return float(loss.detach()), [p.grad.double() for p in model.parameters()]

    def rel(gs: list, ref: list) -> float:
        return max(float((g - r).abs().max() / r.abs().max().clamp_min(1e-30)) for g, r in zip(gs, ref))
    for layout in (torch.contiguous_format, torch.channels_last):
        native = copy.deepcopy(base).to(memory_format=layout)
        unfold = copy.deepcopy(base).to(memory_format=layout)
        convert_to_unfold(unfold.net)
        err_native, err_unfold = [], []
        for state, idx in snaps:
            xb = x[idx].float().contiguous(memory_format=layout)
            _, g64 = step(truth, state, x[idx].double(), y[idx])
            loss_n, gn = step(native, state, xb, y[idx])
            loss_u, gu = step(unfold, state, xb, y[idx])
            assert abs(loss_n - loss_u) <= 1e-5 * max(1.0, abs(loss_n))
            err_native.append(rel(gn, g64))
            err_unfold.append(rel(gu, g64))
        assert np.median(err_unfold) <= 2 * np.median(err_native) + 1e-6, (err_unfold, err_native)
        assert sum(e > 1e-4 for e in err_unfold) <= 3, err_unfold
    pytorch_drift = gap((*f32, "native"), (*cl, "native"))
    assert gap((*f32, "native"), (*f32, "unfold")) <= max(1e-3, 5 * pytorch_drift)
    assert gap((*cl, "native"), (*cl, "unfold")) <= max(1e-3, 5 * pytorch_drift)
