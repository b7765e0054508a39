"""CIFAR bottleneck ResNets and RedNets (Li et al., "Involution: Inverting the Inherence of
Convolution for Visual Recognition", CVPR 2021; RedNet = ResNet whose bottleneck 3x3 conv is an
involution, ``d-li14/involution`` ``cls/mmcls/models/backbones/rednet.py``).

Design choices (shared by ``bottleneck26/38`` and ``rednet26/38`` so that the pair differs only in
the spatial operator and the stem):

* Four stages as in the ImageNet nets, blocks (1,2,4,1) for depth 26 and (2,3,5,2) for depth 38
  (depth = 3 x blocks + stem + fc), strides 1/2/2/2: 32 -> 32/16/8/4. Inputs whose size is not a
  multiple of 8 are zero-padded to one first (28x28 Fashion-MNIST -> 32x32): a stride-2 involution
  on an odd map (7x7) generates its kernels from AvgPool(2) (3x3) while aggregating on 4x4, which
  does not fit.
* Widths are the ImageNet ones divided by 4, times ``width``: stem 32 (ImageNet 64; 32 rather than
  16 so that the RedNet stem's involution has C/2 = 16 = one group of 16 channels), stage mid
  widths 16/32/64/128, expansion 4 (outputs 64/128/256/512). Mid widths must be multiples of
  ``group_channels`` (G = mid / group_channels = 1/2/4/8 at width 1); a bad combination raises.
* Bottleneck (mmcls "pytorch" style, stride on the spatial op): 1x1 -> BN-ReLU -> 3x3 conv or
  involution(mid, K, stride) -> BN-ReLU -> 1x1 (x4) -> BN, shortcut identity or 1x1 strided conv +
  BN (``avg_down=False`` as in RedNet's ResLayer), then ReLU.
* Stems adapted to 32x32 by dropping all downsampling: ResNet: 3x3 conv -> BN-ReLU (the ImageNet
  7x7/2 conv and 3x3/2 max-pool would leave 8x8 before stage 1). RedNet: the paper's stem (3x3 conv
  -> C/2 + BN-ReLU, 3x3 involution, BN-ReLU, 3x3 conv -> C + BN-ReLU) with the first conv at
  stride 1 instead of 2 and no max-pool.
* ``kernel_size`` (K) applies to the bottleneck involutions (paper 7; on 8x8 / 4x4 maps K=7 is
  nearly global, so try 3 / 5); the stem involution is 3x3 as in the paper.
* Init as in mmcls ``RedNet.init_weights``: He normal (fan_out) convs, BN gamma 1, and
  ``zero_init_residual=True`` (each bottleneck's last BN gamma 0, so every block starts as the
  identity). For RedNet this is not cosmetic: an involution is quadratic in its input (the kernel
  is generated from the same x it multiplies), so without it an eval-mode forward at init, where
  BN is the identity, overflows to inf/NaN after a few blocks.

Cost at width 1 on 32x32 (``models.complexity.profile``, MACs): bottleneck26 0.740 M params /
47.6 M MACs; rednet26 K=3/5/7 0.443/0.452/0.466 M / 34.5/35.8/37.8 M (params 60-63 %, MACs 73-80 %
of bottleneck26; ImageNet RedNet-26: 67 % / 72 %). bottleneck38 1.113 M / 65.4 M; rednet38 K=7
0.666 M / 48.8 M.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models import register_model
from models.layers import Involution2d

from ._common import init_weights, pad_to_multiple, scaled

__all__ = ["Bottleneck", "CifarBottleneckNet"]

LAYOUTS = {26: (1, 2, 4, 1), 38: (2, 3, 5, 2)}
STRIDES = (1, 2, 2, 2)
EXPANSION = 4


def _conv_bn_relu(in_ch: int, out_ch: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, k, padding=k // 2, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


class Bottleneck(nn.Module):
    """1x1 -> spatial op (3x3 conv or involution, strided) -> 1x1 (x4), BN after each, shortcut, ReLU."""

    def __init__(self, in_ch: int, mid: int, stride: int, involution: bool, kernel_size: int,
                 group_channels: int, reduction_ratio: int) -> None:
        super().__init__()
        out_ch = mid * EXPANSION
        self.conv1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        if involution:
            self.conv2 = Involution2d(mid, kernel_size=kernel_size, stride=stride, group_channels=group_channels,
                                      reduction_ratio=reduction_ratio)
        else:
            self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class CifarBottleneckNet(nn.Module):
    """Bottleneck ResNet (``involution=False``) or RedNet (``involution=True``) for 32x32 inputs."""

    def __init__(
        self,
        depth: int = 26,
        num_classes: int = 10,
        in_channels: int = 3,
        involution: bool = False,
        kernel_size: int = 7,
        width: float = 1.0,
        group_channels: int = 16,
        reduction_ratio: int = 4,
    ) -> None:
        super().__init__()
        if depth not in LAYOUTS:
            raise ValueError(f"bottleneck depth must be one of {sorted(LAYOUTS)}, got {depth}")
        if involution:
            if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
                raise ValueError(f"involution kernel_size must be an odd int >= 1, got {kernel_size}")
            gc = group_channels
        else:
            gc = 1
        why = f"involutions share kernels over group_channels={group_channels} channels" if involution else ""
        stem = scaled(32, width, 2 * gc, why + " and the stem involution has half the stem channels" if why else "")
        mids = [scaled(b, width, gc, why) for b in (16, 32, 64, 128)]
        if involution:
            self.stem = nn.Sequential(
                *_conv_bn_relu(in_channels, stem // 2, 3),
                Involution2d(stem // 2, kernel_size=3, stride=1, group_channels=group_channels,
                             reduction_ratio=reduction_ratio),
                nn.BatchNorm2d(stem // 2), nn.ReLU(inplace=True),
                *_conv_bn_relu(stem // 2, stem, 3),
            )
        else:
            self.stem = nn.Sequential(*_conv_bn_relu(in_channels, stem, 3))
        blocks: list[nn.Module] = []
        in_ch = stem
        for n_blocks, mid, stride in zip(LAYOUTS[depth], mids, STRIDES):
            for b in range(n_blocks):
                blocks.append(Bottleneck(in_ch, mid, stride if b == 0 else 1, involution, kernel_size,
                                         group_channels, reduction_ratio))
                in_ch = mid * EXPANSION
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        self.down_factor = 2 ** sum(s == 2 for s in STRIDES)
        init_weights(self)
        for m in self.modules():  # zero_init_residual=True, as in mmcls RedNet.init_weights
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)

    def forward_blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of every bottleneck block, in order (probes read blocks here, not by module name)."""
        x = self.stem(pad_to_multiple(x, self.down_factor))
        outs = []
        for block in self.layers:
            x = block(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(pad_to_multiple(x, self.down_factor)))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model
def bottleneck26(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarBottleneckNet:
    """Bottleneck ResNet-26 (blocks 1,2,4,1), the RedNet-26 baseline."""
    return CifarBottleneckNet(26, num_classes, in_channels, involution=False, width=width)


@register_model
def bottleneck38(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarBottleneckNet:
    """Bottleneck ResNet-38 (blocks 2,3,5,2), the RedNet-38 baseline."""
    return CifarBottleneckNet(38, num_classes, in_channels, involution=False, width=width)


@register_model
def rednet26(num_classes: int = 10, in_channels: int = 3, kernel_size: int = 7, width: float = 1.0,
             group_channels: int = 16, reduction_ratio: int = 4) -> CifarBottleneckNet:
    """RedNet-26: bottleneck26 with every bottleneck 3x3 conv -> Involution2d(mid, K, stride)."""
    return CifarBottleneckNet(26, num_classes, in_channels, involution=True, kernel_size=kernel_size, width=width,
                              group_channels=group_channels, reduction_ratio=reduction_ratio)


@register_model
def rednet38(num_classes: int = 10, in_channels: int = 3, kernel_size: int = 7, width: float = 1.0,
             group_channels: int = 16, reduction_ratio: int = 4) -> CifarBottleneckNet:
    """RedNet-38 (blocks 2,3,5,2) with involutions."""
    return CifarBottleneckNet(38, num_classes, in_channels, involution=True, kernel_size=kernel_size, width=width,
                              group_channels=group_channels, reduction_ratio=reduction_ratio)
