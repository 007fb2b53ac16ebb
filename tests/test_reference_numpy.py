"""The numpy layers and numpy_forward agree with PyTorch (real models, real CIFAR and ImageNet photos)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.models.layers import Conv2dSame
from cnnlab.reference import compile_numpy, convert_to_unfold, numpy_forward
from cnnlab.reference import numpy_ops as ops


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).numpy()


def nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def hwio(w: torch.Tensor) -> np.ndarray:
    return w.permute(2, 3, 1, 0).numpy()


@pytest.mark.parametrize("cin,cout,k,stride,padding,dilation,groups", [
    (3, 8, 3, 1, 1, 1, 1), (3, 4, 5, 2, 2, 1, 1), (1, 1, 1, 1, 0, 1, 1), (4, 6, 2, 3, 0, 1, 1),
    (3, 5, 3, 1, 4, 1, 1), (6, 6, 3, 2, 1, 1, 6), (4, 8, 3, 1, 1, 1, 2), (3, 4, 3, 1, 2, 2, 1),
    (6, 12, 5, 1, 2, 1, 6)])
def test_conv2d_matches_torch(cin, cout, k, stride, padding, dilation, groups):
    g = torch.Generator().manual_seed(cin * 100 + k)
    x = torch.randn(2, cin, 11, 9, generator=g, dtype=torch.float64)
    w = torch.randn(cout, cin // groups, k, k, generator=g, dtype=torch.float64)
    b = torch.randn(cout, generator=g, dtype=torch.float64)
    ref = F.conv2d(x, w, b, stride, padding, dilation, groups)
    out = ops.conv2d(nhwc(x), hwio(w), b.numpy(), stride, padding, dilation, groups)
    np.testing.assert_allclose(out, nhwc(ref), atol=1e-10)


@pytest.mark.parametrize("k,stride,size", [(3, 2, 9), (3, 2, 10), (5, 2, 7), (3, 1, 8), (1, 2, 6)])
def test_conv2d_same_padding_is_tensorflows(k, stride, size):
    torch.manual_seed(k)
    conv = Conv2dSame(3, 4, k, stride).double()
    x = torch.randn(1, 3, size, size + 1, dtype=torch.float64)
    out = ops.conv2d(nhwc(x), hwio(conv.weight.detach()), conv.bias.detach().numpy(), stride, "same")
    np.testing.assert_allclose(out, nhwc(conv(x).detach()), atol=1e-10)
    assert out.shape[1:3] == (-(-size // stride), -(-(size + 1) // stride))


def test_course_exercise_functions_on_one_image():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 6, 3))
    w, b = rng.standard_normal((3, 3, 3, 5)), rng.standard_normal(5)
    ref = F.conv2d(torch.from_numpy(x).permute(2, 0, 1)[None], torch.from_numpy(w).permute(3, 2, 0, 1),
                   torch.from_numpy(b), padding=1)
    y = ops.conv3x3_same(x, w, b)
    assert y.shape == (8, 6, 5)
    np.testing.assert_allclose(y, ref[0].permute(1, 2, 0).numpy(), atol=1e-12)
    p = ops.maxpool2x2(y)
    np.testing.assert_allclose(p, F.max_pool2d(ref, 2)[0].permute(1, 2, 0).numpy())
    d = ops.dense(ops.relu(p).reshape(-1), rng.standard_normal((60, 3)), np.zeros(3))
    assert d.shape == (3,)


def test_pooling_matches_torch():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    xn = nhwc(x)
    np.testing.assert_allclose(ops.max_pool2d(xn, 3, 2, 1), nhwc(F.max_pool2d(x, 3, 2, 1)))
    np.testing.assert_allclose(ops.max_pool2d(xn, 2), nhwc(F.max_pool2d(x, 2)))
    for include in (True, False):
        np.testing.assert_allclose(ops.avg_pool2d(xn, 3, 2, 1, count_include_pad=include),
                                   nhwc(F.avg_pool2d(x, 3, 2, 1, count_include_pad=include)), atol=1e-12)
    for size in (1, (3, 2), (4, 5), 7):
        np.testing.assert_allclose(ops.adaptive_avg_pool2d(xn, size), nhwc(F.adaptive_avg_pool2d(x, size)),
                                   atol=1e-12)
        np.testing.assert_allclose(ops.adaptive_max_pool2d(xn, size), nhwc(F.adaptive_max_pool2d(x, size)))
    np.testing.assert_allclose(ops.global_avg_pool(xn), x.mean((2, 3)).numpy(), atol=1e-12)


def test_softmax_and_sigmoid_are_numerically_stable():
    z = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]], np.float32)
    p = ops.softmax(z)
    assert np.isfinite(p).all() and np.allclose(p.sum(1), 1)
    np.testing.assert_allclose(p, torch.softmax(torch.from_numpy(z), 1).numpy(), atol=1e-7)
    s = ops.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(s, [0.0, 0.5, 1.0])
    x = np.linspace(-5, 5, 41)
    np.testing.assert_allclose(ops.gelu(x), F.gelu(torch.from_numpy(x)).numpy(), atol=1e-12)
    np.testing.assert_allclose(ops.tanh(x), np.tanh(x))


def test_batch_norm_inference_form_and_nhwc_dense_weights():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4).double().eval()
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    out = ops.batch_norm(nhwc(x), bn.running_mean.numpy(), bn.running_var.numpy(), bn.weight.detach().numpy(),
                         bn.bias.detach().numpy(), bn.eps)
    np.testing.assert_allclose(out, nhwc(bn(x).detach()), atol=1e-12)
    # PyTorch flattens C,H,W; numpy here flattens H,W,C: the permuted weight gives the same neurons
    lin = nn.Linear(4 * 3 * 5, 6).double()
    ref = lin(x.flatten(1)).detach().numpy()
    got = ops.dense(ops.flatten(nhwc(x)), ops.nhwc_dense_weights(lin.weight.detach().numpy(), (4, 3, 5)),
                    lin.bias.detach().numpy())
    np.testing.assert_allclose(got, ref, atol=1e-12)
    wrong = ops.dense(ops.flatten(nhwc(x)), lin.weight.detach().numpy().T, lin.bias.detach().numpy())
    assert np.abs(wrong - ref).max() > 0.1  # the naive transpose is really wrong


def _randomize_bn(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics, so inference-form BN is really exercised."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model


@pytest.mark.parametrize("name", ["softmax_regression", "mlp", "simple_cnn", "simple_cnn_bn",
                                  "simple_cnn_strided", "simple_cnn_gap", "cnn11", "course_resnet", "airbench",
                                  "cifar_resnet20"])
def test_numpy_forward_runs_the_course_models(name, cifar_lossless):
    torch.manual_seed(0)
    model = _randomize_bn(cnnlab.create_model(name)).eval()
    x = cifar_lossless[0][:16]
    with torch.inference_mode():
        ref = model(x).numpy()
    out = numpy_forward(model, x)
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())
    m64 = model.double()
    with torch.inference_mode():
        ref64 = m64(x.double()).numpy()
    np.testing.assert_allclose(numpy_forward(m64, x.double(), dtype=np.float64), ref64, atol=1e-10)


def test_numpy_forward_pretrained_resnet20_on_real_cifar(resnet20, cifar_test_small, cifar_lossless):
    x, y = cifar_test_small
    with torch.inference_mode():
        ref = resnet20(x).numpy()
    out = numpy_forward(resnet20, x)
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()
    assert (out.argmax(1) == ref.argmax(1)).all()
    assert (out.argmax(1) == y.numpy()).mean() > 0.7  # the real model really works (81% on the JPEG test set)
    # the course layout: uint8 NHWC arrays straight from the dataset file
    from tests.conftest import shared
    d = np.load(shared("cifar10_train_first200_lossless.npz"))
    probs = numpy_forward(resnet20, d["x"][:50], probabilities=True)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == d["y"][:50]).mean() == 1.0  # 100% on these training images, as in torch


def test_numpy_forward_runs_efficientnet_lite0_on_chelsea(lite0, chelsea):
    with torch.inference_mode():
        ref = lite0(chelsea).numpy()
    out = numpy_forward(lite0, chelsea)  # depthwise convs, TF 'same' padding, ReLU6, residual adds
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()
    assert out.argmax() == ref.argmax() and "cat" in lite0.labels[int(out.argmax())]


def test_numpy_forward_of_a_converted_model_and_layer_names():
    torch.manual_seed(0)
    model = cnnlab.create_model("simple_cnn").eval()
    convert_to_unfold(model.net)
    x = torch.rand(4, 3, 32, 32)
    with torch.inference_mode():
        ref = model(x).numpy()
    np.testing.assert_allclose(numpy_forward(model, x), ref, atol=1e-5)
    assert compile_numpy(model).layer_names()[:3] == ["conv1", "relu1", "pool1"]


def test_numpy_forward_refuses_unsupported_layers_by_name():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.PixelShuffle(2), nn.Flatten())
    with pytest.raises(CnnlabError, match=r"layer '1' \(PixelShuffle\)"):
        compile_numpy(net)

    class Branchy(nn.Module):
        def forward(self, x):
            return x.flatten(1) if x.sum() > 0 else -x.flatten(1)
    with pytest.raises(CnnlabError, match="cannot follow the forward"):
        compile_numpy(Branchy())
    with pytest.raises(CnnlabError, match=r"\[N, 3, H, W\]"):
        numpy_forward(nn.Sequential(nn.Flatten()), torch.rand(3, 4))
