"""ImageNet Oct-ResNet-50/101 (Chen et al., "Drop an Octave", ICCV 2019), laid out as
``d-li14/octconv.pytorch`` ``oct_resnet.py`` (Apache-2.0) builds them, from our ``OctaveConvBNAct``.

Layout (224x224; PAPERS.md 5.2-5.3): the torchvision ResNet-50 (7x7/2 stem + 3x3/2 max-pool, stride on
the 3x3) with every bottleneck conv an octave conv + per-branch BN:

* layer1's first block takes the plain stem output (``alpha_in = 0``) and splits it
  (``alpha_out = alpha``); its projection shortcut does the same;
* layer2 and layer3 run at ``alpha`` (d-li14 hard-codes 0.5; ``alpha`` is the knob here);
* layer4 merges: its first block's 1x1 conv1 and shortcut go ``alpha -> 0``, everything after runs
  at ``alpha = 0`` (plain convs), so the pool and the classifier see one full-resolution map;
* stride 2 = AvgPool 2x2/2 on both branches then stride-1 convs (the octave conv's rule), also on
  the 1x1 projection shortcuts.

``alpha = 0`` is exactly torchvision's ResNet-50 in params and MACs (4.089 G); d-li14's README
gives 4.089 / 2.367 GFLOPs (multiply-adds) for alpha = 0 / 0.5 and 7.80 / 3.99 for ResNet-101.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from models import register_model
from models.layers import OctaveConvBNAct

from ._common import init_weights

__all__ = ["OctBottleneck", "OctResNetImageNet"]

Oct = tuple[torch.Tensor, Optional[torch.Tensor]]
LAYOUTS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class OctBottleneck(nn.Module):
    """Octave 1x1 -> 3x3 (stride) -> 1x1 (x4), per-branch BN, shortcut, ReLU on each branch."""

    def __init__(self, in_ch: int, mid: int, stride: int, a_in: float, a_out: float, a_body: float) -> None:
        super().__init__()
        out_ch = mid * 4
        self.conv1 = OctaveConvBNAct(in_ch, mid, 1, alpha_in=a_in, alpha_out=a_out, padding=0)
        self.conv2 = OctaveConvBNAct(mid, mid, 3, alpha_in=a_out, alpha_out=a_body, stride=stride)
        self.conv3 = OctaveConvBNAct(mid, out_ch, 1, alpha_in=a_body, alpha_out=a_body, padding=0, act=False)
        self.shortcut: Optional[nn.Module] = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = OctaveConvBNAct(in_ch, out_ch, 1, alpha_in=a_in, alpha_out=a_body, stride=stride,
                                            padding=0, act=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Oct) -> Oct:
        s_h, s_l = self.shortcut(x) if self.shortcut is not None else (x if isinstance(x, tuple) else (x, None))
        y_h, y_l = self.conv3(self.conv2(self.conv1(x)))
        y_h = self.relu(y_h + s_h)
        y_l = self.relu(y_l + s_l) if y_l is not None else None
        return y_h, y_l


class OctResNetImageNet(nn.Module):
    """ImageNet Oct-ResNet of depth 50 or 101, low-frequency fraction ``alpha`` in [0, 1)."""

    def __init__(self, depth: int = 50, num_classes: int = 1000, in_channels: int = 3, alpha: float = 0.5) -> None:
        super().__init__()
        if depth not in LAYOUTS:
            raise ValueError(f"Oct-ResNet depth must be one of {sorted(LAYOUTS)}, got {depth}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha (fraction of low-frequency channels) must be a number in [0, 1), got {alpha!r}")
        a = float(alpha)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        blocks: list[nn.Module] = []
        in_ch = 64
        for s, (n, mid) in enumerate(zip(LAYOUTS[depth], (64, 128, 256, 512))):
            last = s == 3
            for b in range(n):
                a_in = 0.0 if (s == 0 and b == 0) or (last and b > 0) else a
                a_out = 0.0 if last else a  # layer4: conv1 of its first block already merges (d-li14)
                blocks.append(OctBottleneck(in_ch, mid, 2 if s > 0 and b == 0 else 1, a_in, a_out, a_out))
                in_ch = mid * 4
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_h, _ = self.layers(self.stem(x))
        return self.fc(torch.flatten(self.pool(x_h), 1))


@register_model
def oct_resnet50(num_classes: int = 1000, in_channels: int = 3, alpha: float = 0.5) -> OctResNetImageNet:
    """ImageNet Oct-ResNet-50 (d-li14/octconv.pytorch); alpha = fraction of low-frequency channels."""
    return OctResNetImageNet(50, num_classes, in_channels, alpha)


@register_model
def oct_resnet101(num_classes: int = 1000, in_channels: int = 3, alpha: float = 0.5) -> OctResNetImageNet:
    """ImageNet Oct-ResNet-101 (d-li14/octconv.pytorch)."""
    return OctResNetImageNet(101, num_classes, in_channels, alpha)
