"""MobileNet-v1-style CIFAR net built from depthwise-separable convolutions (Howard et al., "MobileNets",
arXiv 1704.04861; Xception, Chollet CVPR 2017), the compact-block baseline of the conv-design notes
(PAPERS.md 5.4: a depthwise-separable k x k costs ``1/C_out + 1/k^2`` of a standard conv).

Design choices:

* The usual CIFAR adaptation (as in many public CIFAR MobileNets): a 3x3 stride-1 stem conv to 32
  channels, then 13 ``DepthwiseSeparableConv2d(bn_act=True)`` blocks (depthwise 3x3 -> BN-ReLU ->
  pointwise 1x1, followed by BN-ReLU) with widths 64, 128/2, 128, 256/2, 256, 512/2, 5x512, 1024/2,
  1024 ("/2" = depthwise stride 2), i.e. the ImageNet net without its first stride-2 stem and with
  only four downsamplings: 32 -> 16 -> 8 -> 4 -> 2 (28 -> 14 -> 7 -> 4 -> 2).
* ``width`` is MobileNet's width multiplier alpha on every channel count (stem included).
* Global average pooling and one linear layer (no dropout). Init: He normal (fan_out), BN gamma 1.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models import register_model
from models.layers import DepthwiseSeparableConv2d

from ._common import init_weights, scaled

__all__ = ["MobileNetCifar", "MOBILENET_CFG"]

# (out_channels, stride) of the 13 depthwise-separable blocks.
MOBILENET_CFG = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
                 (512, 1), (512, 1), (1024, 2), (1024, 1))


class MobileNetCifar(nn.Module):
    """MobileNet v1 for 32x32 inputs, see the module docstring."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        stem = scaled(32, width)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem),
                                   nn.ReLU(inplace=True)]
        in_ch = stem
        for c, s in MOBILENET_CFG:
            out = scaled(c, width)
            layers += [DepthwiseSeparableConv2d(in_ch, out, 3, stride=s, bn_act=True), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True)]
            in_ch = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


@register_model
def mobilenet_cifar(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> MobileNetCifar:
    """MobileNet v1 (depthwise-separable) for CIFAR; ``width`` = width multiplier."""
    return MobileNetCifar(num_classes, in_channels, width=width)
