import copy
import io
import subprocess
import sys

import pytest
import torch
from torch import nn

from cnnlab.models.layout import crash_prone, to_channels_last


def _shortcut(cin: int = 4, cout: int = 8) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(cin, cout, 1, 2)


@pytest.mark.parametrize("size", [(32, 32), (33, 31), (7, 6)])
def test_rerouted_strided_pointwise_conv_gives_the_same_outputs_and_gradients(size):
    plain, guarded = _shortcut(), to_channels_last(_shortcut())
    assert "forward" in guarded.__dict__ and crash_prone(guarded)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 4, *size, generator=g)
    xa, xb = x.clone().requires_grad_(True), x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    ya, yb = plain(xa), guarded(xb)
    assert ya.shape == yb.shape and torch.allclose(ya, yb, atol=1e-6)
    w = torch.randn(ya.shape, generator=g)
    (ya * w).sum().backward()
    (yb * w).sum().backward()
    assert torch.allclose(xa.grad, xb.grad, atol=1e-6)
    assert torch.allclose(plain.weight.grad, guarded.weight.grad, atol=1e-5)
    assert torch.allclose(plain.bias.grad, guarded.bias.grad, atol=1e-5)


def test_only_the_crash_prone_convolutions_are_rerouted_and_nothing_else_changes():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 8, 1, 2), nn.Conv2d(16, 32, 1, 2),
                        nn.Conv2d(4, 8, 3, 2, 1), nn.Conv2d(4, 8, 1))
    keys = list(net.state_dict())
    to_channels_last(net)
    assert ["forward" in m.__dict__ for m in net] == [False, True, False, False, False]
    assert list(net.state_dict()) == keys and all(type(m) is nn.Conv2d for m in net)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_copies_and_pickles_reroute_through_their_own_weights():
    conv = to_channels_last(_shortcut())
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    twin = copy.deepcopy(conv)
    with torch.no_grad():
        twin.weight.mul_(2)
        twin.bias.zero_()
        assert torch.allclose(twin(x), 2 * (conv(x) - conv.bias.view(1, -1, 1, 1)), atol=1e-5)
    buf = io.BytesIO()
    torch.save(conv, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    with torch.no_grad():
        loaded.weight.zero_()
        assert torch.allclose(loaded(x), loaded.bias.view(1, -1, 1, 1).expand(2, 8, 4, 4))


def test_channels_last_training_of_a_narrow_resnet_shortcut_does_not_crash():
    # in a subprocess: oneDNN's crash on AVX-512 CPUs is a segmentation fault, which would end pytest itself
    code = """
import torch
from torch import nn
from cnnlab.models.layout import to_channels_last
torch.set_num_threads(2)
torch.manual_seed(0)
for cin in (3, 4, 8, 12, 15):
    conv = to_channels_last(nn.Conv2d(cin, 2 * cin, 1, 2))
    for bs in (128, 53) * 10:
        x = torch.randn(bs, cin, 32, 32).contiguous(memory_format=torch.channels_last).requires_grad_(True)
        conv(x).sum().backward()
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stderr[-2000:])
