"""cnnlab.graph (inspect_model): numbers equal those counted by hand on a small model, ties for the
node with the most inputs are all reported and never the normalization in front, receptive fields agree
with an independent gradient measurement, the real networks (Lite0, ResNet-20, torchvision) trace, and a
bare module gives the same answers as the same module wrapped."""
from __future__ import annotations

import copy

import torch
from torch import nn

import cnnlab
from cnnlab.images import Preprocessing
from cnnlab.graph import FanIn, NodeRef, count_macs, inspect_model, most_inputs
from cnnlab.models.classifier import Classifier


class Tiny(nn.Module):
    """conv3x3 -> relu -> three branches (conv3x3/s2, conv1x1/s2, maxpool2) -> cat -> mean -> fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(4, 6, 1, stride=2)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        a = self.relu1(self.conv1(x))
        y = torch.cat([self.conv2(a), self.conv3(a), self.pool(a)], 1)
        return self.fc(y.mean((2, 3)))


def tiny_classifier() -> Classifier:
    return Classifier(Tiny(), [f"c{i}" for i in range(5)], preprocessing=Preprocessing((16, 16), None),
                      feature_layers=["relu1", "conv2", "pool"], head="fc", spec={"name": "tiny"})


def test_tiny_model_numbers_equal_hand_counts():
    r = inspect_model(tiny_classifier())
    # nodes: images, mean, sub, std, truediv, conv1, relu1, conv2, conv3, pool, cat, mean_1, fc, softmax, output
    assert r.nodes == 15
    assert r.op_counts == {"placeholder": 1, "get_attr": 2, "sub": 1, "truediv": 1, "Conv2d": 3, "ReLU": 1,
                           "MaxPool2d": 1, "cat": 1, "mean": 1, "Linear": 1, "softmax": 1, "output": 1}
    assert r.placeholders == 1 and r.placeholder_names == ["images"]
    assert r.max_fan_in == FanIn(3, [NodeRef("cat", "cat")])
    assert r.logits_node == "net_fc" and r.logits_target == "fc" and r.output_node == "softmax"
    # params: conv1 3*4*9+4, conv2 4*6*9+6, conv3 4*6+6, fc 16*5+5
    assert r.params == 112 + 222 + 30 + 85 == r.trainable_params
    # MACs at 16x16: conv1 4*16*16*27, conv2 6*8*8*36, conv3 6*8*8*4, fc 5*16
    assert r.macs == 27648 + 13824 + 1536 + 80
    layer = {entry.name: entry for entry in r.layers}
    assert layer["net_conv2"].shape == [1, 6, 8, 8] and layer["net_conv2"].macs == 13824
    assert layer["cat"].shape == [1, 16, 8, 8] and layer["net_fc"].shape == [1, 5]
    assert layer["net_conv1"].params == 112
    # receptive fields: 3 after conv1; conv2 adds 2*1 -> 5 at jump 2; the 2x2 pool adds 1 -> 4
    stages = {s.name: (s.shape, s.receptive_field, s.stride) for s in r.stages}
    assert stages == {"relu1": ([1, 4, 16, 16], [3, 3], [1, 1]), "conv2": ([1, 6, 8, 8], [5, 5], [2, 2]),
                      "pool": ([1, 4, 8, 8], [4, 4], [2, 2])}
    d = r.to_dict()
    assert {"nodes", "op_counts", "placeholders", "max_fan_in", "logits_node", "params", "macs", "layers"} <= set(d)
    assert d["max_fan_in"] == {"inputs": 3, "nodes": [{"node": "cat", "op": "cat"}]}
    assert "node with the most inputs: cat, 3 inputs" in r.summary() and "net_fc" in r.summary()
    assert "net_conv2" in r.layer_table() and "1x6x8x8" in r.layer_table()


class TwoAdds(nn.Module):
    """Two residual adds (2 inputs each): as many inputs as the normalization's subtraction in front."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        a = self.conv1(x)
        b = a + self.conv2(a)
        c = b + self.conv2(b)
        return self.fc(c.mean((2, 3)))


def test_ties_are_all_reported_and_the_normalization_never_answers():
    model = Classifier(TwoAdds(), ["a", "b", "c"], preprocessing=Preprocessing((8, 8), None), spec={"name": "adds"})
    r = inspect_model(model)
    assert r.op_counts["sub"] == 1 and r.op_counts["truediv"] == 1  # the normalization is in the graph ...
    assert r.max_fan_in == FanIn(2, [NodeRef("add", "add"), NodeRef("add_1", "add")])  # ... but not the answer
    assert "nodes with the most inputs, 2 each (2 tied): add, add_1" in r.summary()
    resnet = inspect_model(cnnlab.create_model("cifar_resnet20"))
    assert resnet.max_fan_in.inputs == 2 and len(resnet.max_fan_in.nodes) == 9  # one add per residual block
    assert {n.op for n in resnet.max_fan_in.nodes} == {"add"}


def test_most_inputs_takes_any_graph():
    nodes = [("x", "Placeholder", 0), ("concat", "Concat", 3), ("add", "Add", 2), ("concat_1", "Concat", 3)]
    assert most_inputs(nodes) == FanIn(3, [NodeRef("concat", "Concat"), NodeRef("concat_1", "Concat")])
    assert most_inputs([]) == FanIn(0, [])


class SqueezeShuffle(nn.Module):
    """conv3x3 -> squeeze-excite gate -> channel shuffle (view/transpose/reshape) -> conv3x3/s2 -> fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excite = nn.Conv2d(4, 4, 1)
        self.conv2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        a = self.conv1(x)
        a = a * torch.sigmoid(self.excite(self.squeeze(a)))
        n, c, h, w = a.shape
        a = a.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.fc(self.conv2(a).mean((2, 3)))


def test_receptive_field_through_squeeze_excite_and_channel_shuffle():
    model = Classifier(SqueezeShuffle(), ["a", "b", "c"], preprocessing=Preprocessing((20, 20), None),
                       feature_layers=["conv1", "conv2"], head="fc", spec={"name": "se"})
    stages = {s.name: (s.receptive_field, s.stride) for s in inspect_model(model).stages}
    # the gate sees the whole image but is not counted; the shuffle keeps the field: 3, then 3 + 2*1
    assert stages == {"conv1": ([3, 3], [1, 1]), "conv2": ([5, 5], [2, 2])}


def test_plain_module_and_other_input_size():
    tiny = Tiny()
    r = inspect_model(tiny, input_size=(32, 24))
    assert tiny.training  # the module's mode is left as it was
    assert r.macs == 4 * 32 * 24 * 27 + 6 * 16 * 12 * 36 + 6 * 16 * 12 * 4 + 80
    assert r.macs == count_macs(Tiny(), (32, 24))
    assert r.placeholders == 1 and r.logits_node == "net_fc"


def _gradient_receptive_field(model: Classifier, layer: str, size: int) -> int:
    """Independent measurement: on a copy with positive weights and identity BatchNorm, the input pixels
    that influence the centre unit of `layer` (nonzero gradient), as the height of their bounding box."""
    net = copy.deepcopy(model.net).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(m.weight.abs() + 0.01)
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1), m.bias.fill_(0), m.running_mean.fill_(0), m.running_var.fill_(1)
    out = {}
    handle = dict(net.named_modules())[layer].register_forward_hook(lambda m, i, o: out.update(y=o))
    x = torch.ones(1, 3, size, size, requires_grad=True)
    net(x)
    handle.remove()
    y = out["y"]
    y[0, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
    rows = (x.grad[0].abs().sum(0).sum(1) > 0).nonzero().flatten()
    return int(rows.max() - rows.min() + 1)


def test_receptive_fields_agree_with_gradient_measurement():
    model = cnnlab.create_model("cifar_resnet20")
    r = inspect_model(model, input_size=(128, 128))
    analytic = {s.name: s.receptive_field[0] for s in r.stages}
    assert analytic == {"act": 3, "layer1": 15, "layer2": 37, "layer3": 81}
    for layer in ("layer1", "layer2", "layer3"):
        assert _gradient_receptive_field(model, layer, 128) == analytic[layer], layer


def test_efficientnet_lite0_graph(lite0):
    r = inspect_model(lite0)
    assert r.params == sum(p.numel() for p in lite0.parameters()) == 4_652_008
    assert r.op_counts["Conv2dSame"] == 49 and r.op_counts["BatchNorm2d"] == 49 and r.op_counts["add"] == 9
    assert r.logits_node == "net__fc" and r.placeholders == 1
    assert r.macs == sum(entry.macs for entry in r.layers)  # the FLOP counter and per-layer counts agree
    assert 3.6e8 < r.macs < 4.2e8  # EfficientNet-Lite0 is ~0.4 GMACs at 224 px
    shapes = {s.name: s.shape for s in r.stages}
    assert shapes["_stem_act"] == [1, 32, 112, 112] and shapes["_head_act"] == [1, 1280, 7, 7]
    strides = [s.stride[0] for s in r.stages]
    assert strides == sorted(strides) and strides[-1] == 32
    # TF 'SAME' padding at odd sizes: 225 px still gives ceil(225/32) = 8
    assert inspect_model(lite0, (225, 225)).stages[-1].shape == [1, 1280, 8, 8]


def test_torchvision_googlenet_without_weights():
    r = inspect_model(cnnlab.create_model("googlenet"), input_size=(96, 96))
    assert r.max_fan_in.inputs == 4 and len(r.max_fan_in.nodes) == 9  # the inception branches, one cat each
    assert {n.op for n in r.max_fan_in.nodes} == {"cat"}
    assert r.logits_node == "net_fc" and r.op_counts["cat"] == 9
    assert r.params == 6_624_904


def test_bare_torchvision_module_equals_the_wrapped_one():
    import torchvision
    net = torchvision.models.resnet18(weights=None)
    bare = inspect_model(net, input_size=(64, 64)).to_dict()
    wrapped = inspect_model(cnnlab.wrap(net), input_size=(64, 64)).to_dict()
    assert bare == wrapped
    assert bare["params"] == 11_689_512 and bare["logits_node"] == "net_fc"
    assert [s["name"] for s in bare["stages"]] == ["relu", "layer1", "layer2", "layer3", "layer4"]
