"""Depthwise-separable convolution (depthwise k x k, groups = C_in, then pointwise 1x1).

Xception (Chollet, CVPR 2017) / MobileNet (Howard et al., arXiv 1704.04861); as in timm
``SeparableConv2d``. Cost ratio to a standard conv: ``1/C_out + 1/k^2``. Grouped, dilated,
transposed and 3-D convolutions are torch's own ``nn.Conv2d(groups=, dilation=)``,
``nn.ConvTranspose2d`` and ``nn.Conv3d``; they are not re-implemented here.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

__all__ = ["DepthwiseSeparableConv2d"]


class DepthwiseSeparableConv2d(nn.Module):
    """Depthwise conv (``groups=in_channels``) followed by a pointwise 1x1 conv.

    Args:
        in_channels: input channels.
        out_channels: output channels (of the pointwise conv).
        kernel_size: depthwise kernel size.
        stride: depthwise stride.
        padding: depthwise padding; None -> ``dilation * (kernel_size - 1) // 2`` (size preserving
            for odd kernels).
        dilation: depthwise dilation.
        bias: bias on both convs.
        bn_act: insert ``BatchNorm2d + ReLU`` between depthwise and pointwise (MobileNet style).

    Params ``C_in*k*k + C_in*C_out`` (+bias/BN); MACs per output pixel the same.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: Optional[int] = None,
        dilation: int = 1,
        bias: bool = False,
        bn_act: bool = False,
    ) -> None:
        super().__init__()
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride, padding, dilation,
                                   groups=in_channels, bias=bias)
        self.mid = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True)) if bn_act else nn.Identity()
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.mid(self.depthwise(x)))
