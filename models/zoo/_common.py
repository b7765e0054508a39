"""Helpers shared by the model families: choice checks, channel scaling, init, input padding.

Nothing here re-implements a layer of ``models.layers``; the helpers only glue those layers into
CIFAR-sized networks.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "check_choice",
    "scaled",
    "init_weights",
    "pad_to_multiple",
]


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
