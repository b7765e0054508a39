"""ImageNet DenseNet-121 (Huang et al., CVPR 2017) with the even kernels of Wu et al., "Convolution with
even-sized kernels and symmetric padding" (NeurIPS 2019): ``conv="c2sp"`` replaces every dense
layer's 3x3 conv by ``create_conv("c2sp")`` (2x2, symmetric padding), as the poster's ImageNet
DenseNet-121 C2sp row (PAPERS.md 1.4: 8.0 M / 2834 M for C3, 6.7 M / 2143 M for C2sp).

Layout (torchvision ``densenet121`` / Huang et al. Table 1; the poster's C3 row, 8.0 M / 2834 M, is
exactly this net; PAPERS.md does not describe the official DenseNet code):
7x7/2 conv stem (64) + BN-ReLU + 3x3/2 max-pool; dense blocks of 6/12/24/16 layers, growth 32,
bottleneck width 4 x 32 = 128: BN-ReLU-1x1 (-> 128) -BN-ReLU-k x k (-> 32), concatenated; transitions
BN-ReLU-1x1 (halve channels) then AvgPool 2x2/2 (conv-then-pool: the poster's 2834 M MACs need
the 1x1 at the higher resolution; pooling first would give 2603 M); final BN-ReLU, global pool,
linear 1024 -> ``num_classes``. The dense layers' k x k convs never stride, so the even kernels
need no downsampling rule here. Input 224x224.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models import register_model
from models.layers import create_conv

from ._common import check_choice, init_weights

__all__ = ["DenseNet", "DenseLayer"]

CONVS = ("c3", "c2", "c2sp")


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 (bn_size x growth) -> BN-ReLU-k x k (growth); output concatenated to the input."""

    def __init__(self, in_ch: int, growth: int, bn_size: int, conv: str) -> None:
        super().__init__()
        mid = bn_size * growth
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True), nn.Conv2d(in_ch, mid, 1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), create_conv(conv, mid, growth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


def _transition(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True), nn.Conv2d(in_ch, out_ch, 1, bias=False),
                         nn.AvgPool2d(2, 2))


class DenseNet(nn.Module):
    """DenseNet-BC for ImageNet.

    Args:
        blocks: dense layers per block ((6, 12, 24, 16) for DenseNet-121).
        num_classes: classifier outputs (1000 = ImageNet).
        in_channels: image channels.
        conv: "c3" | "c2" | "c2sp", the dense layers' k x k conv.
        growth: growth rate k (32); bn_size: bottleneck factor (4); stem: stem channels (64).
    """

    def __init__(self, blocks: tuple[int, ...] = (6, 12, 24, 16), num_classes: int = 1000, in_channels: int = 3,
                 conv: str = "c3", growth: int = 32, bn_size: int = 4, stem: int = 64) -> None:
        super().__init__()
        check_choice("conv", conv, CONVS)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, stem, 7, 2, 3, bias=False), nn.BatchNorm2d(stem),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        ch = stem
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(ch, growth, bn_size, conv))
                ch += growth
            if i < len(blocks) - 1:
                layers.append(_transition(ch, ch // 2))
                ch //= 2
        layers += [nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


@register_model
def densenet121(num_classes: int = 1000, in_channels: int = 3, conv: str = "c3") -> DenseNet:
    """DenseNet-121 (6, 12, 24, 16), growth 32; ``conv="c2sp"``: the poster's DenseNet-121 C2sp."""
    return DenseNet((6, 12, 24, 16), num_classes, in_channels, conv)
