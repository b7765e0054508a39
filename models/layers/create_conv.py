"""Factories: pick a convolution / downsampling variant by name, so models stay variant-agnostic.

Kinds follow Wu et al., "Convolution with even-sized kernels and symmetric padding" (NeurIPS 2019):
C2/C4 = even kernels with TF-'same' padding, C2sp/C4sp = symmetric padding, C3/C5 = odd kernels;
plus "involution" (Li et al., CVPR 2021). Downsampling kinds follow Zhang, "Making Convolutional
Networks Shift-Invariant Again" (ICML 2019). In the timm spirit of ``create_conv2d`` / ``create_aa``.

Stride-2 even kernels: the official code (``boluoweifenda/CNN``, ``source/nets/resnet50_c2sp.py``,
"following fb.resnet.torch") never strides an even conv; it applies ``AvgPool 2x2/2`` and then the
stride-1 conv. ``create_conv`` does the same for c2, c2sp, c4, c4sp with stride 2 (returns
``nn.Sequential(nn.AvgPool2d(2), conv)``), which also avoids the extra shift of an even strided conv.
Odd kinds use a strided ``nn.Conv2d(padding=k//2)``; involution handles its stride internally.
"""
from __future__ import annotations

import torch.nn as nn

from .blur_pool import BlurPool2d, MaxBlurPool2d
from .involution import Involution2d
from .padding import SamePadConv2d, SymPadConv2d

__all__ = ["CONV_KINDS", "DOWNSAMPLE_KINDS", "KERNEL_SIZES", "create_conv", "create_downsample"]

CONV_KINDS = ("c2", "c2sp", "c3", "c4", "c4sp", "c5", "involution")
KERNEL_SIZES = {"c2": 2, "c2sp": 2, "c3": 3, "c4": 4, "c4sp": 4, "c5": 5}
DOWNSAMPLE_KINDS = ("strided", "blurpool", "maxblur")


def create_conv(
    kind: str,
    in_channels: int,
    out_channels: int,
    stride: int = 1,
    bias: bool = False,
    **kw,
) -> nn.Module:
    """Build a spatial conv of the given kind (``CONV_KINDS``).

    Args:
        kind: "c2" | "c2sp" | "c3" | "c4" | "c4sp" | "c5" | "involution".
        in_channels: input channels (must be divisible by 4 for c2sp/c4sp).
        out_channels: output channels (must equal ``in_channels`` for "involution").
        stride: 1 or 2 (even kinds with stride 2 -> ``AvgPool2d(2)`` + stride-1 conv).
        bias: conv bias (ignored for involution, whose kernel-generating conv has its own bias).
        **kw: only for "involution": ``kernel_size`` (7), ``group_channels`` (16),
            ``reduction_ratio`` (4). Anything else raises ``TypeError``.

    Output size is ``ceil(H / stride)`` for every kind (for even inputs; c3/c5 give
    ``floor((H-1)/stride)+1``).
    """
    if kind not in CONV_KINDS:
        raise ValueError(f"unknown conv kind {kind!r}; allowed kinds: {', '.join(CONV_KINDS)}")
    if kind == "involution":
        unknown = set(kw) - {"kernel_size", "group_channels", "reduction_ratio"}
        if unknown:
            raise TypeError(f"create_conv('involution') got unexpected kwargs {sorted(unknown)}")
        if in_channels != out_channels:
            raise ValueError(
                f"involution keeps the channel count: in_channels ({in_channels}) must equal out_channels ({out_channels})"
            )
        return Involution2d(in_channels, kernel_size=kw.get("kernel_size", 7), stride=stride,
                            group_channels=kw.get("group_channels", 16),
                            reduction_ratio=kw.get("reduction_ratio", 4))
    if kw:
        raise TypeError(f"create_conv({kind!r}) got unexpected kwargs {sorted(kw)}")
    k = KERNEL_SIZES[kind]
    if k % 2:
        return nn.Conv2d(in_channels, out_channels, k, stride=stride, padding=k // 2, bias=bias)
    cls = SymPadConv2d if kind.endswith("sp") else SamePadConv2d
    if stride == 1:
        return cls(in_channels, out_channels, k, stride=1, bias=bias)
    return nn.Sequential(nn.AvgPool2d(stride), cls(in_channels, out_channels, k, stride=1, bias=bias))


def create_downsample(kind: str, channels: int, stride: int = 2, filt_size: int = 4, pad_type: str = "reflect") -> nn.Module:
    """Build the anti-aliasing downsampler of the given kind (``DOWNSAMPLE_KINDS``).

    Args:
        kind: "strided" -> ``nn.Identity()``: no extra layer, the caller's conv keeps its stride;
            "blurpool" -> ``BlurPool2d`` (the caller's conv runs at stride 1 before it);
            "maxblur" -> ``MaxBlurPool2d`` (replaces a MaxPool(2, 2)).
        channels: channels of the tensor to downsample.
        stride: subsampling factor.
        filt_size: binomial filter size 1..7.
        pad_type: "reflect" | "replicate" | "zero".
    """
    if kind == "strided":
        return nn.Identity()
    if kind == "blurpool":
        return BlurPool2d(channels, filt_size=filt_size, stride=stride, pad_type=pad_type)
    if kind == "maxblur":
        return MaxBlurPool2d(channels, filt_size=filt_size, stride=stride, pad_type=pad_type)
    raise ValueError(f"unknown downsample kind {kind!r}; allowed kinds: {', '.join(DOWNSAMPLE_KINDS)}")
