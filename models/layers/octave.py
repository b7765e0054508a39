"""Octave convolution: high-frequency (full resolution) and low-frequency (half resolution) channels.

Paper: Chen et al., "Drop an Octave: Reducing Spatial Redundancy in Convolutional Neural Networks
with Octave Convolution", ICCV 2019 (arXiv 1904.05049). Follows ``d-li14/octconv.pytorch``
(``octconv.py``, Apache-2.0) and the official MXNet ``facebookresearch/OctConv`` (MIT):

* ``int(alpha * C)`` low-frequency channels, the rest high-frequency;
* ``Y_H = h2h(X_H) + up(l2h(X_L))``, ``Y_L = l2l(X_L) + h2l(pool(X_H))`` with ``pool`` =
  AvgPool 2x2/2 and ``up`` = nearest x2;
* stride 2: AvgPool 2x2/2 on X_H (before h2h and h2l) and on X_L before l2l; l2h then runs on the
  un-pooled X_L, already at the new high resolution, and is not upsampled (as in d-li14);
* the first layer has ``alpha_in = 0``, the last ``alpha_out = 0``.

Relative to a vanilla conv: MACs ``1 - 1.5a + 0.75a^2`` and output memory ``1 - 0.75a`` (a = alpha).
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["OctaveConv2d", "OctaveConvBNAct"]

OctTensor = Union[torch.Tensor, tuple[torch.Tensor, Optional[torch.Tensor]]]


def _check_alpha(name: str, a: float) -> None:
    if not 0.0 <= a < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {a}")


class OctaveConv2d(nn.Module):
    """Octave convolution (four convs h2h, h2l, l2h, l2l).

    Args:
        in_channels: total input channels (high + low).
        out_channels: total output channels (high + low).
        kernel_size: kernel size of all four convs.
        alpha_in: fraction of low-frequency input channels, in [0, 1); ``int(alpha_in*in_channels)``.
        alpha_out: fraction of low-frequency output channels, in [0, 1).
        stride: 1 or 2 (stride 2 = AvgPool 2x2/2 first, no strided conv).
        padding: zero padding of every conv (``kernel_size // 2`` keeps sizes).
        bias: bias in the convs (applied once per output path: on h2h and l2l / h2l).

    Input: ``(x_high, x_low)`` or a plain tensor / ``(x, None)`` when ``alpha_in == 0``.
    Output: ``(y_high, y_low)``; ``y_low`` is None when ``alpha_out == 0``. Spatial sizes of the
    high path must be even (the low path is half resolution).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        alpha_in: float = 0.5,
        alpha_out: float = 0.5,
        stride: int = 1,
        padding: int = 0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        _check_alpha("alpha_in", alpha_in)
        _check_alpha("alpha_out", alpha_out)
        if stride not in (1, 2):
            raise ValueError(f"OctaveConv2d supports stride 1 or 2, got {stride}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.alpha_in, self.alpha_out = alpha_in, alpha_out
        self.in_low = int(alpha_in * in_channels)
        self.in_high = in_channels - self.in_low
        self.out_low = int(alpha_out * out_channels)
        self.out_high = out_channels - self.out_low
        if self.in_high < 1 or self.out_high < 1:
            raise ValueError("OctaveConv2d needs at least one high-frequency channel on each side")

        def conv(i: int, o: int, b: bool) -> Optional[nn.Conv2d]:
            return nn.Conv2d(i, o, kernel_size, 1, padding, bias=b) if i > 0 and o > 0 else None

        self.conv_h2h = conv(self.in_high, self.out_high, bias)
        self.conv_l2h = conv(self.in_low, self.out_high, False)
        self.conv_h2l = conv(self.in_high, self.out_low, bias)
        self.conv_l2l = conv(self.in_low, self.out_low, False)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, alpha_in={self.alpha_in}, "
                f"alpha_out={self.alpha_out}, stride={self.stride}, padding={self.padding}")

    def forward(self, x: OctTensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        x_h, x_l = x if isinstance(x, (tuple, list)) else (x, None)
        if (x_l is None) != (self.in_low == 0):
            raise ValueError(f"alpha_in={self.alpha_in}: expected x_low {'None' if self.in_low == 0 else 'tensor'}")
        if self.stride == 2:
            x_h = F.avg_pool2d(x_h, 2, 2)
        y_h = self.conv_h2h(x_h)
        y_l = self.conv_h2l(F.avg_pool2d(x_h, 2, 2)) if self.conv_h2l is not None else None
        if x_l is not None:
            l2h = self.conv_l2h(x_l)
            y_h = y_h + (F.interpolate(l2h, scale_factor=2.0, mode="nearest") if self.stride == 1 else l2h)
            if self.conv_l2l is not None:
                y_l = y_l + self.conv_l2l(F.avg_pool2d(x_l, 2, 2) if self.stride == 2 else x_l)
        return y_h, y_l


class OctaveConvBNAct(nn.Module):
    """``OctaveConv2d`` followed by a separate BatchNorm (and activation) on each output branch.

    Args:
        in_channels, out_channels, kernel_size, alpha_in, alpha_out, stride: as ``OctaveConv2d``.
        padding: conv padding; default ``kernel_size // 2`` (size preserving).
        act: apply ReLU after BN (False for the last conv of a residual block).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        alpha_in: float = 0.5,
        alpha_out: float = 0.5,
        stride: int = 1,
        padding: Optional[int] = None,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = OctaveConv2d(in_channels, out_channels, kernel_size, alpha_in, alpha_out, stride,
                                 kernel_size // 2 if padding is None else padding, bias=False)
        self.bn_h = nn.BatchNorm2d(self.conv.out_high)
        self.bn_l = nn.BatchNorm2d(self.conv.out_low) if self.conv.out_low > 0 else None
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: OctTensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        y_h, y_l = self.conv(x)
        y_h = self.act(self.bn_h(y_h))
        if y_l is not None:
            y_l = self.act(self.bn_l(y_l))
        return y_h, y_l
