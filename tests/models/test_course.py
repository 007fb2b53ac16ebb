"""The small teaching networks: shapes, named layers, options, checkpoints that rebuild them."""
from __future__ import annotations

import pytest
import torch

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.models.course import parse_strides

CASES = [("softmax_regression", {}), ("mlp", {"widths": "64,32", "activation": "tanh"}), ("simple_cnn", {}),
         ("simple_cnn_bn", {}), ("simple_cnn_strided", {}), ("simple_cnn_gap", {}), ("cnn11", {}),
         ("cnn11", {"bn": True}), ("course_resnet", {}), ("course_resnet", {"strides": "1,2", "bn": True}),
         ("simple_cnn", {"bn": True, "channels": 16}), ("course_resnet", {"shortcut": False, "dropout": 0.0}),
         ("airbench", {"widths": "16,32,32", "whiten_width": 8})]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_every_course_model_is_a_working_classifier(name, kwargs, cifar_lossless, tmp_path):
    model = cnnlab.create_model(name, **kwargs)
    x = cifar_lossless[0][:4]
    logits = model(x)
    assert logits.shape == (4, model.num_classes) and torch.isfinite(logits).all()
    emb = model.features(x)
    assert emb.shape == (4, model.head().in_features)
    for layer in model.layers():  # feature layers are spatial maps, early to late
        out = {}
        h = model.layer(layer).register_forward_hook(lambda m, i, o: out.update(y=o))
        model(x)
        h.remove()
        assert out["y"].dim() == 4
    path = tmp_path / "m.pt"
    torch.save({"cnnlab": model.checkpoint_meta(), "state_dict": model.net.state_dict()}, path)
    again = cnnlab.create_model(weights=path)
    assert torch.allclose(again(x), logits, atol=1e-5)


def test_cnn11_layout():
    m = cnnlab.create_model("cnn11")
    convs = [mod for mod in m.net.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(64, 3, 11, 11), (128, 64, 3, 3), (128, 128, 3, 3)]
    assert any(isinstance(mod, torch.nn.MaxPool2d) for mod in m.net.modules())
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.net.modules())
    assert sum(isinstance(mod, torch.nn.BatchNorm2d) for mod in cnnlab.create_model("cnn11", bn=True).net.modules()) == 3


def test_course_resnet_strides_shortcuts_and_shapes():
    assert parse_strides("3-3-3") == [1, 1, 2, 1, 1, 2, 1, 1, 1]  # blocks per stage
    assert parse_strides("5-5-5") == [1, 1, 1, 1, 2, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1]
    assert parse_strides("1,1,2,1,1,2,1,1,1") == [1, 1, 2, 1, 1, 2, 1, 1, 1]
    with pytest.raises(CnnlabError, match="1s and 2s"):
        parse_strides("1,3")
    m = cnnlab.create_model("course_resnet")  # the 3-3-3 net with 100 classes
    assert m.num_classes == 100 and m.net.conv1.out_channels == 16
    blocks = list(m.net.blocks)
    assert [b.conv1.stride[0] for b in blocks] == [1, 1, 2, 1, 1, 2, 1, 1, 1]
    assert [b.conv1.out_channels for b in blocks][-1] == 64
    strided = [b for b in blocks if b.conv1.stride[0] == 2]
    assert all(isinstance(b.shortcut, torch.nn.Conv2d) and b.shortcut.kernel_size == (1, 1) for b in strided)
    assert all(isinstance(b.dropout, torch.nn.Dropout) and b.dropout.p == 0.3 for b in blocks)
    plain = cnnlab.create_model("course_resnet", shortcut=False)
    assert sum(p.numel() for p in plain.parameters()) < sum(p.numel() for p in m.parameters())
    x = torch.rand(2, 3, 32, 32)
    b = blocks[2].eval()  # shortcut path really adds: zeroing the residual branch leaves the 1x1 conv of x
    with torch.no_grad():
        b.conv2.weight.zero_(); b.conv2.bias.zero_()
        h = torch.rand(2, 16, 32, 32)
        assert torch.allclose(b(h), b.shortcut(h))
    assert m(x).shape == (2, 100)


def test_mlp_he_init_scale_and_activation():
    m = cnnlab.create_model("mlp", widths="1024", activation="relu")
    w = m.net.fc1.weight
    assert abs(w.std().item() - (2 / w.shape[1]) ** 0.5) < 0.1 * (2 / w.shape[1]) ** 0.5
    assert isinstance(m.net.act1, torch.nn.ReLU)
    assert isinstance(cnnlab.create_model("mlp", activation="tanh").net.act1, torch.nn.Tanh)
    with pytest.raises(CnnlabError, match="relu or tanh"):
        cnnlab.create_model("mlp", activation="sigmoid")


def test_simple_cnn_variants():
    plain = cnnlab.create_model("simple_cnn").net
    strided = cnnlab.create_model("simple_cnn_strided").net
    gap = cnnlab.create_model("simple_cnn_gap").net
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in plain.modules()) == 2
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in strided.modules())
    assert strided.conv1.stride == (2, 2)
    assert isinstance(gap.gap, torch.nn.AdaptiveAvgPool2d) and gap.fc.in_features == 64
    assert sum(p.numel() for p in gap.parameters()) < sum(p.numel() for p in plain.parameters())


def test_variant_arguments_and_what_the_checkpoint_records():
    """simple_cnn with bn/strided/gap turned on is the same network as the variant that has them."""
    a, b = cnnlab.create_model("simple_cnn", bn=True, strided=True), cnnlab.create_model("simple_cnn_strided")
    assert [(n, tuple(p.shape)) for n, p in a.net.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in b.net.named_parameters()]
    assert a.spec["kwargs"] == {"num_classes": 10, "bn": True, "strided": True} and b.spec["kwargs"] == {"num_classes": 10}
    plain = cnnlab.create_model("simple_cnn_bn", bn=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.net.modules())
    small = cnnlab.create_model("softmax_regression", input_size=28)
    assert small.input_size == (28, 28) and small(torch.rand(1, 3, 28, 28)).shape == (1, 10)
    assert cnnlab.create_model("course_resnet").labels[:2] == ["class 0", "class 1"]  # never CIFAR-100's names
