"""Anti-aliased downsampling: BlurPool (low-pass binomial filter, then subsample).

Paper: R. Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019 (arXiv 1904.11486).
Re-implemented (the official ``adobe/antialiased-cnns`` is CC BY-NC-SA and is not vendored) to match
its ``BlurPool`` / seed document 002's ``Downsample`` exactly, with ``pad_off = 0``:

* 1-D binomial taps ``comb(f-1, i)`` (f = 1..7), 2-D filter = outer product normalised to sum 1;
* padding ``floor((f-1)/2)`` on the left/top and ``ceil((f-1)/2)`` on the right/bottom
  (asymmetric for even f, so 32x32 -> 16x16 for f=4; timm pads symmetrically and gets 17x17);
* applied as a depthwise ``F.conv2d(..., stride, groups=C)``; f=1 is plain ``x[:, :, ::s, ::s]``.

Output size is ``ceil(H / stride)`` for every filter size.

Drop-in patterns (README of the official repo): MaxPool(k, s) -> ``MaxBlurPool2d`` = MaxPool(2, s1)
+ BlurPool(s); strided Conv -> Conv(s1) -> BN -> ReLU -> BlurPool(s) (``conv_bn_relu_blur``; the
blur goes *after* the nonlinearity, adobe/antialiased-cnns#7); AvgPool(2, 2) -> BlurPool.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["binomial_filter", "BlurPool2d", "MaxBlurPool2d", "conv_bn_relu_blur", "PAD_TYPES"]

PAD_TYPES = {"reflect": "reflect", "refl": "reflect", "replicate": "replicate", "repl": "replicate",
             "zero": "constant"}


def binomial_filter(filt_size: int) -> torch.Tensor:
    """2-D normalised binomial filter of size ``filt_size`` (outer product of ``comb(f-1, i)``)."""
    if not isinstance(filt_size, int) or not 1 <= filt_size <= 7:
        raise ValueError(f"filt_size must be an int in 1..7, got {filt_size!r}")
    a = torch.tensor([math.comb(filt_size - 1, i) for i in range(filt_size)], dtype=torch.float64)
    f = a[:, None] * a[None, :]
    return (f / f.sum()).to(torch.float32)


class BlurPool2d(nn.Module):
    """Blur (binomial low-pass) then subsample, depthwise; no learnable parameters.

    Args:
        channels: number of channels (the filter is repeated per channel, ``groups=channels``).
        filt_size: binomial filter size 1..7 (1: no blur, plain subsampling; 4: [1,3,3,1], default).
        stride: subsampling factor.
        pad_type: "reflect" (default), "replicate" or "zero" ("refl"/"repl" aliases accepted).

    Padding is ``floor((f-1)/2)`` left/top and ``ceil((f-1)/2)`` right/bottom (Adobe convention),
    so the output is ``ceil(H/stride) x ceil(W/stride)``. The filter is a non-persistent buffer
    (rebuilt on construction, absent from ``state_dict``) and is cast to the input dtype.
    """

    def __init__(self, channels: int, filt_size: int = 4, stride: int = 2, pad_type: str = "reflect") -> None:
        super().__init__()
        if pad_type not in PAD_TYPES:
            raise ValueError(f"pad_type must be one of {sorted(set(PAD_TYPES))}, got {pad_type!r}")
        filt = binomial_filter(filt_size)
        self.channels = channels
        self.filt_size = filt_size
        self.stride = stride
        self.pad_type = pad_type
        self._pad_mode = PAD_TYPES[pad_type]
        lo, hi = (filt_size - 1) // 2, filt_size // 2  # floor / ceil of (f-1)/2
        self.pad_sizes = (lo, hi, lo, hi)  # F.pad order (left, right, top, bottom)
        self.register_buffer("filt", filt[None, None].repeat(channels, 1, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return f"{self.channels}, filt_size={self.filt_size}, stride={self.stride}, pad_type={self.pad_type!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.filt_size == 1:
            return x[:, :, ::self.stride, ::self.stride]
        x = F.pad(x, self.pad_sizes, mode=self._pad_mode)
        return F.conv2d(x, self.filt.to(x.dtype), stride=self.stride, groups=x.shape[1])


class MaxBlurPool2d(nn.Sequential):
    """MaxBlurPool: dense ``MaxPool2d(2, stride=1)`` then ``BlurPool2d(stride)`` (replaces MaxPool(2, 2)).

    Args:
        channels: number of channels.
        filt_size: binomial filter size 1..7 (default 4).
        stride: subsampling factor of the blur.
        pad_type: BlurPool padding, "reflect" | "replicate" | "zero".

    The stride-1 max pool shrinks H by 1 (32 -> 31); BlurPool then gives ``ceil(31/2) = 16``.
    """

    def __init__(self, channels: int, filt_size: int = 4, stride: int = 2, pad_type: str = "reflect") -> None:
        super().__init__()
        self.max = nn.MaxPool2d(kernel_size=2, stride=1)
        self.blur = BlurPool2d(channels, filt_size=filt_size, stride=stride, pad_type=pad_type)


def conv_bn_relu_blur(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 2,
    filt_size: int = 4,
    pad_type: str = "reflect",
    bias: bool = False,
) -> nn.Sequential:
    """ConvBlurPool: ``Conv(k, stride 1, pad k//2) -> BN -> ReLU -> BlurPool2d(stride)``.

    Replaces a strided ``Conv -> BN -> ReLU``; the blur follows the ReLU (Zhang 2019, issue #7).
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=kernel_size // 2, bias=bias),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        BlurPool2d(out_channels, filt_size=filt_size, stride=stride, pad_type=pad_type),
    )
