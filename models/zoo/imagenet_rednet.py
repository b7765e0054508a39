"""ImageNet RedNet-26/38/50/101/152 (Li et al., "Involution: Inverting the Inherence of Convolution
for Visual Recognition", CVPR 2021), laid out as ``d-li14/involution``
``cls/mmcls/models/backbones/rednet.py`` (MIT) builds them, from our ``Involution2d``.

Registered as ``imagenet_rednet26`` ... ``imagenet_rednet152`` so they cannot be confused with the
CIFAR ``rednet26`` / ``rednet38`` of ``bottleneck_cifar`` (32x32 stems, quarter widths).

Layout (224x224 input, PAPERS.md 3.2):

* stem: 3x3 conv /2 (3 -> 32) + BN-ReLU, ``Involution2d(32, K=stem_kernel_size)``, BN-ReLU, 3x3 conv
  (32 -> 64) + BN-ReLU, 3x3/2 max-pool (56x56). ``stem_kernel_size`` defaults to 3, as the ImageNet
  code builds it (cls/mmcls/models/backbones/rednet.py ``involution(stem_channels // 2, 3, 1)`` in every
  stored version, and PaddleClas' port of the released checkpoints); 7 is the stem of the repo's
  det/mmdet backbone and the build the README's params / FLOPs table was computed on (all ten figures
  fit it, see ``rednet_note`` in experiments/paper_tables.yaml);
* four stages of bottlenecks, blocks (1,2,4,1) / (2,3,5,2) / (3,4,6,3) / (3,4,23,3) / (3,8,36,3),
  mid widths 64/128/256/512, expansion 4, strides 1/2/2/2 on the spatial op (mmcls "pytorch"
  style): 1x1 -> BN-ReLU -> ``Involution2d(mid, K=7, stride)`` -> BN-ReLU -> 1x1 -> BN, shortcut
  identity or strided 1x1 conv + BN (``avg_down=False``), ReLU after the sum;
* global average pool, linear 2048 -> ``num_classes`` (mmcls ``LinearClsHead``).

``Involution2d`` has mmcls' parameters exactly (1x1 C -> C/4 + BN + ReLU, 1x1 C/4 -> K*K*G with
bias, G = C/16), so params match the README to every printed digit (RedNet-152 needs the 7x7 stem).
Init as mmcls: He normal (fan_out) convs and ``zero_init_residual`` (each bottleneck's last BN gamma 0).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models import register_model
from models.layers import Involution2d

from ._common import init_weights
from .imagenet_resnet import Bottleneck, _shortcut

__all__ = ["RedNet", "REDNET_LAYOUTS"]

REDNET_LAYOUTS = {26: (1, 2, 4, 1), 38: (2, 3, 5, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
MIDS = (64, 128, 256, 512)
STRIDES = (1, 2, 2, 2)


def _conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


class RedNet(nn.Module):
    """ImageNet RedNet of the given depth (``REDNET_LAYOUTS``), see the module docstring."""

    def __init__(self, depth: int = 50, num_classes: int = 1000, in_channels: int = 3, kernel_size: int = 7,
                 group_channels: int = 16, reduction_ratio: int = 4, stem_channels: int = 64,
                 stem_kernel_size: int = 3) -> None:
        super().__init__()
        if depth not in REDNET_LAYOUTS:
            raise ValueError(f"RedNet depth must be one of {sorted(REDNET_LAYOUTS)}, got {depth}")
        half = stem_channels // 2
        self.stem = nn.Sequential(
            *_conv_bn_relu(in_channels, half, stride=2),
            Involution2d(half, kernel_size=stem_kernel_size, stride=1, group_channels=group_channels,
                         reduction_ratio=reduction_ratio),
            nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            *_conv_bn_relu(half, stem_channels),
            nn.MaxPool2d(3, 2, 1),
        )
        blocks: list[nn.Module] = []
        in_ch = stem_channels
        for n_blocks, mid, stride in zip(REDNET_LAYOUTS[depth], MIDS, STRIDES):
            for b in range(n_blocks):
                s = stride if b == 0 else 1
                inv = Involution2d(mid, kernel_size=kernel_size, stride=s, group_channels=group_channels,
                                   reduction_ratio=reduction_ratio)
                blocks.append(Bottleneck(in_ch, mid, inv, _shortcut(in_ch, mid * Bottleneck.expansion, s, "strided", 1)))
                in_ch = mid * Bottleneck.expansion
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_weights(self)
        for m in self.modules():  # zero_init_residual=True (mmcls RedNet.init_weights)
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def _rednet(depth: int):
    def build(num_classes: int = 1000, in_channels: int = 3, kernel_size: int = 7, group_channels: int = 16,
              reduction_ratio: int = 4, stem_kernel_size: int = 3) -> RedNet:
        return RedNet(depth, num_classes, in_channels, kernel_size, group_channels, reduction_ratio,
                      stem_kernel_size=stem_kernel_size)

    build.__name__ = f"imagenet_rednet{depth}"
    build.__doc__ = f"ImageNet RedNet-{depth} (blocks {REDNET_LAYOUTS[depth]}), d-li14/involution rednet.py."
    return register_model(build)


imagenet_rednet26 = _rednet(26)
imagenet_rednet38 = _rednet(38)
imagenet_rednet50 = _rednet(50)
imagenet_rednet101 = _rednet(101)
imagenet_rednet152 = _rednet(152)
