"""Factories: pick a convolution / downsampling variant by name, so models stay variant-agnostic.

Kinds follow Wu et al., "Convolution with even-sized kernels and symmetric padding" (NeurIPS 2019):
C2/C4 = even kernels with TF-'same' padding, C2sp/C4sp = symmetric padding, C3/C5 = odd kernels;
plus "involution" (Li et al., CVPR 2021). Downsampling kinds follow Zhang, "Making Convolutional
Networks Shift-Invariant Again" (ICML 2019). In the timm spirit of ``create_conv2d`` / ``create_aa``:
the factory alone decides padding, pooling and which class builds a kind; blocks never look at the
kind's name.

``CONV_KIND_TABLE`` is the one owner of the spatial conv kinds and their properties; every probe,
model and report imports it (or ``SPATIAL_KINDS``, its names in table order).

Stride-2 even kernels: the official code (``boluoweifenda/CNN``, ``source/nets/resnet50_c2sp.py``,
"following fb.resnet.torch") never strides an even conv; it applies ``AvgPool 2x2/2`` and then the
stride-1 conv. ``create_conv`` does the same for c2, c2sp, c4, c4sp with stride 2 (returns
``nn.Sequential(nn.AvgPool2d(2), conv)``), which also avoids the extra shift of an even strided conv.
Odd maps: our ``nn.AvgPool2d(2)`` floors (7 -> 3, the last row/column is dropped), while the
official TF ``avg_pool(padding='SAME')`` ceils (7 -> 4, the last window averages its valid pixels).
CIFAR maps (32/16/8) are even, where both agree. Odd kinds use a strided ``nn.Conv2d(padding=k//2)``;
involution handles its stride internally.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from .blur_pool import BlurPool2d, MaxBlurPool2d
from .involution import Involution2d
from .padding import SYMPAD_ORDERS, SamePadConv2d, SymPadConv2d, SymPadStemConv2d

__all__ = [
    "ConvKind", "CONV_KIND_TABLE", "SPATIAL_KINDS", "CONV_KINDS", "DOWNSAMPLE_KINDS",
    "create_conv", "create_downsample", "conv_stride_for", "create_shortcut_pool",
]


@dataclass(frozen=True)
class ConvKind:
    """Properties of one spatial conv kind (Wu et al. 2019 naming).

    Attributes:
        name: "c2", "c2sp", ... (lower case; figures print ``name.upper()``).
        kernel_size: square kernel size k.
        padding: "half" (odd k, ``k//2`` each side), "same" (TF 'SAME': the extra pixel of an even
            kernel on the right/bottom) or "symmetric" (four channel groups padded toward the four
            corners, ``SymPadConv2d``).
    """

    name: str
    kernel_size: int
    padding: str

    @property
    def even(self) -> bool:
        """Even kernel: a stride-2 conv of this kind is ``AvgPool2d(2)`` + stride-1 conv (official code)."""
        return self.kernel_size % 2 == 0

    @property
    def symmetric(self) -> bool:
        """Symmetric padding (C2sp/C4sp): shift-free, needs channel counts divisible by 4."""
        return self.padding == "symmetric"

    @property
    def channel_multiple(self) -> int:
        """Channel counts of inner layers must be multiples of this (4 padding groups for sp kinds)."""
        return 4 if self.symmetric else 1


CONV_KIND_TABLE: dict[str, ConvKind] = {k.name: k for k in (
    ConvKind("c2", 2, "same"),
    ConvKind("c2sp", 2, "symmetric"),
    ConvKind("c3", 3, "half"),
    ConvKind("c4", 4, "same"),
    ConvKind("c4sp", 4, "symmetric"),
    ConvKind("c5", 5, "half"),
)}
SPATIAL_KINDS: tuple[str, ...] = tuple(CONV_KIND_TABLE)  # kinds that can replace every 3x3 of a net
CONV_KINDS: tuple[str, ...] = (*SPATIAL_KINDS, "involution")
DOWNSAMPLE_KINDS = ("strided", "blurpool", "maxblur")
_INVOLUTION_KW = ("kernel_size", "group_channels", "reduction_ratio")


def _create_involution(in_channels: int, out_channels: int, stride: int, kw: dict) -> nn.Module:
    unknown = set(kw) - set(_INVOLUTION_KW)
    if unknown:
        raise TypeError(f"create_conv('involution') got unexpected kwargs {sorted(unknown)}")
    if in_channels != out_channels:
        raise ValueError(
            f"involution keeps the channel count: in_channels ({in_channels}) must equal out_channels ({out_channels})"
        )
    return Involution2d(in_channels, kernel_size=kw.get("kernel_size", 7), stride=stride,
                        group_channels=kw.get("group_channels", 16),
                        reduction_ratio=kw.get("reduction_ratio", 4))


def _create_symmetric(in_channels: int, out_channels: int, k: int, stride: int, bias: bool, order: str) -> nn.Module:
    """SymPadConv2d, or SymPadStemConv2d (groups over the outputs) when the input is not a multiple of 4."""
    if in_channels % 4 == 0:
        return SymPadConv2d(in_channels, out_channels, k, stride=1, bias=bias, order=order)
    if stride != 1:
        raise ValueError(f"symmetric padding on in_channels={in_channels} (not a multiple of 4, the image stem) "
                         f"supports stride 1 only, got stride={stride}")
    return SymPadStemConv2d(in_channels, out_channels, k, bias=bias, order=order)


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
        in_channels: input channels. For c2sp/c4sp a multiple of 4 gives ``SymPadConv2d`` (input
            groups); any other count (the 1- or 3-channel image stem) gives ``SymPadStemConv2d``
            (output groups, stride 1 only; ``out_channels`` must then be a multiple of 4).
        out_channels: output channels (must equal ``in_channels`` for "involution").
        stride: 1 or 2 (even kinds with stride 2 -> ``AvgPool2d(2)`` + stride-1 conv).
        bias: conv bias (ignored for involution, whose kernel-generating conv has its own bias).
        **kw: for "involution": ``kernel_size`` (7), ``group_channels`` (16), ``reduction_ratio`` (4);
            for c2sp/c4sp: ``order`` of the corner groups (``SYMPAD_ORDERS``, default "seed000").
            Anything else raises ``TypeError``.

    Output size is ``ceil(H / stride)`` for every kind on even inputs; on odd inputs c3/c5 give
    ``floor((H-1)/stride)+1`` and the even kinds ``floor(H/stride)`` (see the module docstring).
    """
    if kind not in CONV_KINDS:
        raise ValueError(f"unknown conv kind {kind!r}; allowed kinds: {', '.join(CONV_KINDS)}")
    if kind == "involution":
        return _create_involution(in_channels, out_channels, stride, kw)
    spec = CONV_KIND_TABLE[kind]
    order = kw.pop("order", "seed000") if spec.symmetric else None
    if kw:
        raise TypeError(f"create_conv({kind!r}) got unexpected kwargs {sorted(kw)}")
    k = spec.kernel_size
    if not spec.even:
        return nn.Conv2d(in_channels, out_channels, k, stride=stride, padding=k // 2, bias=bias)
    if spec.symmetric:
        conv = _create_symmetric(in_channels, out_channels, k, stride, bias, order)
    else:
        conv = SamePadConv2d(in_channels, out_channels, k, stride=1, bias=bias)
    return conv if stride == 1 else nn.Sequential(nn.AvgPool2d(stride), conv)


def conv_stride_for(downsample: str, stride: int) -> int:
    """Stride a block's conv keeps in front of ``create_downsample(downsample, ..., stride)``.

    "strided": the conv strides itself; "blurpool"/"maxblur": the conv runs at stride 1 and the
    blur layer subsamples (Zhang 2019's ConvBlurPool).
    """
    return stride if downsample == "strided" else 1


def create_downsample(kind: str, channels: int, stride: int = 2, filt_size: int = 4, pad_type: str = "reflect") -> nn.Module:
    """Build the anti-aliasing downsampler of the given kind (``DOWNSAMPLE_KINDS``), timm ``create_aa``-like.

    Args:
        kind: "strided" -> ``nn.Identity()``: no extra layer, the caller's conv keeps its stride;
            "blurpool" -> ``BlurPool2d`` (the caller's conv runs at stride 1 before it);
            "maxblur" -> ``MaxBlurPool2d`` (replaces a MaxPool(2, 2)).
        channels: channels of the tensor to downsample.
        stride: subsampling factor; 1 -> ``nn.Identity()`` for every kind, so blocks call this
            unconditionally.
        filt_size: binomial filter size 1..7.
        pad_type: "reflect" | "replicate" | "zero".
    """
    if kind not in DOWNSAMPLE_KINDS:
        raise ValueError(f"unknown downsample kind {kind!r}; allowed kinds: {', '.join(DOWNSAMPLE_KINDS)}")
    if kind == "strided" or stride == 1:
        return nn.Identity()
    cls = BlurPool2d if kind == "blurpool" else MaxBlurPool2d
    return cls(channels, filt_size=filt_size, stride=stride, pad_type=pad_type)


def create_shortcut_pool(conv: str, downsample: str, channels: int, stride: int, filt_size: int = 4) -> tuple[nn.Module, int]:
    """The pooling in front of a projection shortcut's 1x1 conv, and the stride left to that conv.

    stride 1 -> (Identity, 1); "blurpool" -> (BlurPool2d, 1) (blur and 1x1 conv commute);
    "strided" with an even kind -> (AvgPool2d, 1) (official boluoweifenda/CNN code, "Bag of
    Tricks" shortcut); "strided" with an odd kind -> (Identity, stride): a strided 1x1 conv.
    """
    if stride == 1:
        return nn.Identity(), 1
    if downsample != "strided":
        return create_downsample(downsample, channels, stride=stride, filt_size=filt_size), 1
    if CONV_KIND_TABLE[conv].even:
        return nn.AvgPool2d(stride), 1
    return nn.Identity(), stride
