"""Helpers shared by the model families: kind checks, the symmetric-padding stem conv, init, padding.

Nothing here re-implements a layer of ``models.layers``; the helpers only glue those layers into
CIFAR-sized networks.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.layers import KERNEL_SIZES, create_conv, symmetric_pad_sizes

__all__ = [
    "SPATIAL_KINDS",
    "check_choice",
    "scaled",
    "spatial_conv",
    "SymPadStemConv2d",
    "init_weights",
    "pad_to_multiple",
]

# Kinds that can replace *every* 3x3 conv of a network (involution keeps the channel count, so it
# cannot be a stem or a channel-changing conv; it is used by RedNet instead).
SPATIAL_KINDS = tuple(KERNEL_SIZES)  # c2, c2sp, c3, c4, c4sp, c5


def check_choice(name: str, value, allowed) -> None:
    """Raise ``ValueError`` naming the allowed values when ``value`` is not one of them."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(str, allowed))}")


def scaled(base: int, width: float, multiple: int = 1, why: str = "") -> int:
    """``round(base * width)``; ``ValueError`` (mentioning ``why``) unless a positive multiple of ``multiple``."""
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    c = int(round(base * width))
    if c < 1 or c % multiple:
        raise ValueError(
            f"width={width} gives {c} channels (from base {base}); this configuration needs a positive "
            f"multiple of {multiple}{' (' + why + ')' if why else ''}"
        )
    return c


class SymPadStemConv2d(nn.Conv2d):
    """Even-kernel symmetric-padding conv for inputs whose channel count is not divisible by 4.

    ``SymPadConv2d`` splits the *input* channels into 4 groups padded towards the 4 corners; an
    RGB (3) or grey (1) image cannot be split that way. This stem variant splits the *output*
    channels instead: output group g (``out_channels // 4`` channels) is a VALID ``k x k`` conv
    over all input channels zero-padded with ``symmetric_pad_sizes(k)[g]`` (left-top, right-top,
    left-bottom, right-bottom). Each output channel is shifted by half a pixel towards its
    group's corner, and the four shifts cancel over the channel population, so no net drift enters
    the network; the next (symmetric) layers mix the groups. Weight ``[C_out, C_in, k, k]``: exactly
    the parameters and MACs of the plain C2/C4 stem (E3: symmetric padding is free).

    Args:
        in_channels: input channels (any number).
        out_channels: output channels; must be divisible by 4.
        kernel_size: even kernel size.
        bias: conv bias.
    """

    symmetric_padding = True  # receptive field: covers (k+1) x (k+1) across its groups

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = False) -> None:
        if kernel_size < 2 or kernel_size % 2:
            raise ValueError(f"SymPadStemConv2d needs an even kernel_size, got {kernel_size}")
        if out_channels % 4:
            raise ValueError(f"SymPadStemConv2d needs out_channels divisible by 4, got {out_channels}")
        super().__init__(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.out_channels // 4
        outs = []
        for g, pads in enumerate(symmetric_pad_sizes(self.kernel_size[0])):
            w = self.weight[g * q:(g + 1) * q]
            b = None if self.bias is None else self.bias[g * q:(g + 1) * q]
            outs.append(F.conv2d(F.pad(x, pads), w, b))
        return torch.cat(outs, dim=1)


def spatial_conv(kind: str, in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
    """``create_conv(kind, ...)`` (no bias; BN follows), except for the sp kinds on a non-multiple-of-4
    input (the image stem), which get ``SymPadStemConv2d`` (stride 1 only)."""
    check_choice("conv kind", kind, SPATIAL_KINDS)
    if kind.endswith("sp") and in_channels % 4:
        if stride != 1:
            raise ValueError("the symmetric-padding stem conv supports stride 1 only")
        return SymPadStemConv2d(in_channels, out_channels, KERNEL_SIZES[kind])
    return create_conv(kind, in_channels, out_channels, stride=stride, bias=False)


def init_weights(model: nn.Module) -> None:
    """He (fan_out) init for convs, BN gamma 1 / beta 0, linear layers keep the PyTorch default."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad H and W (split evenly, extra pixel bottom/right) up to a multiple of ``multiple``.

    Used by nets whose downsampling needs sizes divisible by 2**stages (octave low branch, 4-stage
    bottlenecks with strided involution, VGG's five pools): 28x28 Fashion-MNIST becomes 32x32, as
    LeNet-5 did for MNIST. 32x32 inputs are untouched.
    """
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
