"""VGG-13 with batch norm for CIFAR (Simonyan & Zisserman, ICLR 2015), the CIFAR net of the appendix of
Zhang, "Making Convolutional Networks Shift-Invariant Again" (ICML 2019), with plain or anti-aliased
max-pooling.

Design choices:

* cfg [64,64,M,128,128,M,256,256,M,512,512,M,512,512,M] (x ``width``), 3x3 conv (padding 1, no bias)
  -> BN -> ReLU; after the fifth pool the map is 1x1, then global average pooling (a no-op there,
  kept so any input size works) and one linear layer (the usual CIFAR head, no 4096-wide FCs).
* Five 2x pools need a size divisible by 32: inputs are zero-padded up to a multiple of 32 first
  (28x28 Fashion-MNIST -> 32x32, as LeNet-5 padded MNIST). Without it the sizes go
  28/14/7/3/1 and the fifth pool has nothing left to pool.
* ``downsample="strided"``: ``MaxPool2d(2, 2)`` (the baseline). ``"maxblur"``: ``MaxBlurPool2d``
  (dense MaxPool(2, s1) + BlurPool(``filt_size``, s2)), the paper's anti-aliased VGG.
  ``"blurpool"`` is accepted as an alias of ``"maxblur"``: VGG has no strided conv, and the
  BlurPool paper anti-aliases VGG's max-pools with MaxBlurPool, so that is the only sensible
  meaning (the ResNet instead raises for "maxblur").
* ``pad_type`` of the blur defaults to "replicate", not Adobe's "reflect": reflect padding needs
  pad < map size, and the fifth pool blurs a 1x1 map (2x2 after MaxPool(2, s1) -> 1x1), where
  reflect fails for every filter size > 1 (the fourth one, 4x4 -> 3x3, fails for filt_size 6, 7).
  Replicate equals reflect in the interior and differs only in border taps.
* Init: He normal (fan_out) convs, BN gamma 1.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models import register_model
from models.layers import create_downsample

from ._common import check_choice, init_weights, pad_to_multiple

__all__ = ["VGGCifar", "VGG13_CFG"]

VGG13_CFG = (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
VGG_DOWNSAMPLE = ("strided", "maxblur", "blurpool")


class VGGCifar(nn.Module):
    """VGG with BN; ``cfg`` entries are conv widths or "M" (a 2x pool)."""

    def __init__(self, cfg=VGG13_CFG, num_classes: int = 10, in_channels: int = 3, downsample: str = "strided",
                 filt_size: int = 4, width: float = 1.0, pad_type: str = "replicate") -> None:
        super().__init__()
        check_choice("downsample", downsample, VGG_DOWNSAMPLE)
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
        layers: list[nn.Module] = []
        in_ch = in_channels
        n_pool = 0
        for v in cfg:
            if v == "M":
                n_pool += 1
                if downsample == "strided":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers.append(create_downsample("maxblur", in_ch, stride=2, filt_size=filt_size, pad_type=pad_type))
            else:
                out = max(1, int(round(v * width)))
                layers += [nn.Conv2d(in_ch, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                in_ch = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        self.down_factor = 2 ** n_pool
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(pad_to_multiple(x, self.down_factor))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model
def vgg13_bn(num_classes: int = 10, in_channels: int = 3, downsample: str = "strided", filt_size: int = 4,
             width: float = 1.0, pad_type: str = "replicate") -> VGGCifar:
    """VGG-13-BN for 32x32 inputs; ``downsample`` "strided" (MaxPool) or "maxblur" (alias "blurpool")."""
    return VGGCifar(VGG13_CFG, num_classes, in_channels, downsample=downsample, filt_size=filt_size, width=width,
                    pad_type=pad_type)
