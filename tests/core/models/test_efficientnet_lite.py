"""EfficientNet-Lite0 as the shipped weights describe it: TensorFlow's "same" padding, the stages the
registry names, and the fast network (load_network's rewrites) computing the same function."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from core.models.efficientnet_lite import (
    LITE0_BLOCKS,
    Conv2dSame,
    EfficientNetLite0,
    lite0_weights_path,
)
from core.models.registry import MODELS


@pytest.fixture(scope="module")
def shipped() -> EfficientNetLite0:
    net = EfficientNetLite0()
    net.load_state_dict(torch.load(lite0_weights_path(), map_location="cpu", weights_only=True))  # strict: every key fits
    return net.eval()


@pytest.mark.parametrize("size", [7, 8, 15, 16, 33])
@pytest.mark.parametrize(("kernel", "stride"), [(1, 1), (3, 1), (5, 1), (3, 2), (5, 2)])
def test_same_padding_gives_ceil_of_size_over_stride(size, kernel, stride):
    conv = Conv2dSame(1, 1, kernel, stride=stride, bias=False)
    out = conv(torch.rand(1, 1, size, size + 1))
    assert tuple(out.shape[-2:]) == (math.ceil(size / stride), math.ceil((size + 1) / stride))


def test_same_padding_puts_the_odd_pixel_at_the_end_as_tensorflow_does():
    """A 3x3 kernel that copies its centre, stride 2: on an even side TensorFlow pads 0 before and 1
    after, so outputs read pixels 1, 3, 5...; on an odd side it pads 1 on each, so they read 0, 2, 4..."""
    conv = Conv2dSame(1, 1, 3, stride=2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0
    even = torch.arange(64.0).reshape(1, 1, 8, 8)
    odd = torch.arange(49.0).reshape(1, 1, 7, 7)
    torch.testing.assert_close(conv(even), even[..., 1::2, 1::2])
    torch.testing.assert_close(conv(odd), odd[..., 0::2, 0::2])


def test_stride_one_same_padding_equals_plain_symmetric_padding():
    torch.manual_seed(0)
    same = Conv2dSame(4, 6, 5, bias=True)
    plain = nn.Conv2d(4, 6, 5, padding=2, bias=True)
    plain.load_state_dict(same.state_dict())
    x = torch.rand(2, 4, 10, 9)
    with torch.no_grad():
        torch.testing.assert_close(same(x), plain(x))


def test_the_shipped_weights_give_the_stages_and_channels_the_registry_declares(shipped):
    entry = MODELS["efficientnet-lite0"]
    stages = shipped.stages()
    names = [name for name, _ in stages]
    assert len(stages) == 19 == LITE0_BLOCKS + 3
    assert names == ["stem"] + [f"block{i}" for i in range(16)] + ["head", "logits"] == list(entry.layers)
    x = (torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 255 - 127) / 128
    seen = {}
    with torch.no_grad():
        for name, stage in stages:
            x = stage(x)
            seen[name] = x.shape
    assert {name: shape[1] for name, shape in seen.items()} == entry.channels
    assert tuple(seen["stem"][-2:]) == (32, 32) and tuple(seen["head"][-2:]) == (64 // entry.stride,) * 2
    assert tuple(seen["logits"]) == (1, 1000)


def test_the_fast_network_computes_what_the_shipped_module_does(shipped, lite0):
    """load_network's network (batch norms folded, stride-1 convolutions padding by themselves,
    channels-last) against the module built straight from the weights, on a 96 x 80 image."""
    assert not any(type(m) is Conv2dSame and m.stride == (1, 1) for m in lite0.modules()), "stride-1 convs pad by themselves"
    assert any(type(m) is Conv2dSame and m.stride == (2, 2) for m in lite0.modules()), "strided convs keep TensorFlow's padding"
    image = torch.rand(1, 3, 96, 80, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fast = lite0(image, ["block8", "logits"])
        x = MODELS["efficientnet-lite0"].normalize(image)
        plain = {}
        for name, stage in shipped.stages():
            x = plain[name] = stage(x)
    for layer in ("block8", "logits"):
        difference = float((fast[layer] - plain[layer]).abs().max() / plain[layer].abs().max())
        assert difference < 1e-4, f"{layer}: {difference:.2e}"
