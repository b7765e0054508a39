"""Oct-ResNet for CIFAR: the basic-block CIFAR ResNet (He et al. 2016) with every conv an octave conv
(Chen et al., "Drop an Octave: Reducing Spatial Redundancy in Convolutional Neural Networks with
Octave Convolution", ICCV 2019; follows ``d-li14/octconv.pytorch`` and ``facebookresearch/OctConv``).

Design choices:

* Same layout, widths and option-B projection shortcuts as ``resnet_cifar`` (16/32/64 x ``width``,
  6n+2 layers, strides 1/2/2), built from ``OctaveConvBNAct`` (``OctaveConv2d`` + a separate BN per
  frequency branch). ``int(alpha * C)`` channels of every feature map are low-frequency (half
  resolution), e.g. 2/4/8 of 16/32/64 at alpha = 0.125.
* Boundaries: the stem has ``alpha_in = 0`` (image in, split out); the second conv of the very
  last block has ``alpha_out = 0``, so global pooling sees one full-resolution map. Everything in
  between keeps ``alpha`` (unlike d-li14's ImageNet net, which runs its whole last stage at
  alpha 0): every stride-1 conv but the stem and that last one then costs exactly
  ``1 - 1.5a + 0.75a^2`` of its vanilla MACs (O3; 82.4 % at a = 0.125). The stride-2 convs cost a
  bit more (``(1-a)^2 + 1.25a(1-a) + a^2/4``: their l2h conv runs on X_L, already at the new high
  resolution, as in d-li14 / the official code), so the whole Oct-ResNet-20 is at 83.5 % / 69.1 % /
  46.2 % / 31.6 % of the alpha=0 MACs for a = .125 / .25 / .5 / .75 (theory 82.4 / 67.2 / 43.8 /
  29.7 %); params do not depend on alpha.
* Shortcuts: identity when the shape is kept; when it changes, an octave 1x1 projection (stride 2
  = AvgPool on both branches, as in the octave conv) + per-branch BN. The last block's identity
  shortcut must also go from (high, low) to one map: it nearest-upsamples the low part and
  concatenates it to the high part (no parameters, no MACs; the identity at alpha = 0).
* alpha = 0 gives exactly the plain ``resnet20``/``resnet26`` (c3, strided) in params and, on 32x32
  inputs, conv MACs: its stride-2 convs are AvgPool 2x2 + stride-1 conv, whose MACs equal the
  strided conv's. (On 28x28 inputs the padding below makes it cost as on 32x32: compare an alpha
  sweep against ``oct_resnet20(alpha=0)``, not ``resnet20``.)
* Spatial sizes must stay even on the high branch down to the last stage (32/16/8 high, 16/8/4
  low): inputs not divisible by 8 are zero-padded up (28x28 -> 32x32), see ``pad_to_multiple``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import register_model
from models.layers import OctaveConvBNAct

from ._common import init_weights, pad_to_multiple, scaled

__all__ = ["OctBasicBlock", "OctResNet"]

Oct = tuple[torch.Tensor, Optional[torch.Tensor]]


class _MergeBranches(nn.Module):
    """(x_high, x_low) -> cat(x_high, nearest_up(x_low)): parameter-free alpha -> 0 shortcut."""

    def forward(self, x: Oct) -> Oct:
        x_h, x_l = x
        if x_l is None:
            return x_h, None
        return torch.cat([x_h, F.interpolate(x_l, size=x_h.shape[-2:], mode="nearest")], dim=1), None


class OctBasicBlock(nn.Module):
    """Octave conv-BN-ReLU -> octave conv-BN, plus shortcut, ReLU on each branch."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, alpha: float, alpha_out: float) -> None:
        super().__init__()
        self.conv1 = OctaveConvBNAct(in_ch, out_ch, 3, alpha_in=alpha, alpha_out=alpha, stride=stride)
        self.conv2 = OctaveConvBNAct(out_ch, out_ch, 3, alpha_in=alpha, alpha_out=alpha_out, act=False)
        if stride != 1 or in_ch != out_ch:
            self.shortcut: nn.Module = OctaveConvBNAct(in_ch, out_ch, 1, alpha_in=alpha, alpha_out=alpha_out,
                                                       stride=stride, padding=0, act=False)
        elif alpha_out != alpha and int(alpha * in_ch) > 0:
            self.shortcut = _MergeBranches()
        else:
            self.shortcut = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Oct) -> Oct:
        y_h, y_l = self.conv2(self.conv1(x))
        s_h, s_l = self.shortcut(x)
        y_h = self.relu(y_h + s_h)
        if y_l is not None:
            y_l = self.relu(y_l + s_l)
        return y_h, y_l


class OctResNet(nn.Module):
    """CIFAR Oct-ResNet, depth 6n+2, see the module docstring."""

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3, alpha: float = 0.125,
                 width: float = 1.0) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"Oct-ResNet depth must be 6n+2 with n >= 1, got {depth}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha (fraction of low-frequency channels) must be a number in [0, 1), got {alpha!r}")
        self.alpha = float(alpha)
        n = (depth - 2) // 6
        widths = [scaled(16, width), scaled(32, width), scaled(64, width)]
        self.stem = OctaveConvBNAct(in_channels, widths[0], 3, alpha_in=0.0, alpha_out=self.alpha)
        blocks: list[nn.Module] = []
        in_ch = widths[0]
        for s, w in enumerate(widths):
            for b in range(n):
                last = s == len(widths) - 1 and b == n - 1
                stride = 2 if (s > 0 and b == 0) else 1
                blocks.append(OctBasicBlock(in_ch, w, stride, self.alpha, 0.0 if last else self.alpha))
                in_ch = w
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        self.down_factor = 2 ** len(widths)  # two stride-2 stages, plus the half-resolution low branch
        init_weights(self)

    def forward_blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """High-frequency output of every block, in order (probes read blocks here, not by module name)."""
        x = self.stem(pad_to_multiple(x, self.down_factor))
        outs = []
        for block in self.layers:
            x = block(x)
            outs.append(x[0])
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_h, _ = self.layers(self.stem(pad_to_multiple(x, self.down_factor)))
        return self.fc(torch.flatten(self.pool(x_h), 1))


@register_model
def oct_resnet20(num_classes: int = 10, in_channels: int = 3, alpha: float = 0.125, width: float = 1.0) -> OctResNet:
    """Oct-ResNet-20 (n=3); alpha = fraction of low-frequency channels."""
    return OctResNet(20, num_classes, in_channels, alpha=alpha, width=width)


@register_model
def oct_resnet26(num_classes: int = 10, in_channels: int = 3, alpha: float = 0.125, width: float = 1.0) -> OctResNet:
    """Oct-ResNet-26 (n=4; 26 = 6*4+2), the basic-block analogue of the paper's ResNet-26 row."""
    return OctResNet(26, num_classes, in_channels, alpha=alpha, width=width)
