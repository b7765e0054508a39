"""ImageNet ResNet-18 / ResNet-50 (He et al., CVPR 2016; torchvision layout, stride on the 3x3 = "v1.5")
with the variants of three documents, all from our layers:

* ``conv`` (c3 | c2 | c2sp) and ``width``: Wu et al., "Convolution with even-sized kernels and
  symmetric padding" (NeurIPS 2019), as the official ``boluoweifenda/CNN``
  ``source/nets/resnet50_c2sp.py`` builds its ResNet-50 (PAPERS.md 1.3): every bottleneck 3x3
  becomes ``create_conv(conv)``; downsampling is AvgPool 2x2/2 then the stride-1 conv on the main
  path ("following fb.resnet.torch") and AvgPool 2x2/2 then the 1x1 conv on the shortcut;
  pre-activation bottlenecks (BN-ReLU before each conv, a final BN-ReLU before the pool; the
  official code uses ReLU6, ``act="relu6"``). The 7x7 stem keeps its kernel (C2sp only changes the
  bottlenecks: that is how 19.3 M / 3062 M come out). ``width`` scales the four stages, not the
  stem (0.5x rows of the poster: 1127 M / 870 M MACs need the 64-channel stem).
* ``downsample="blurpool"`` and ``filt_size``: Zhang, "Making Convolutional Networks Shift-Invariant
  Again" (ICML 2019), as ``adobe/antialiased-cnns`` ``antialiased_cnns/resnet.py`` builds them
  (post-activation torchvision blocks): the stem max-pool becomes MaxPool(2, s1) + BlurPool; in a
  strided BasicBlock conv1 runs at stride 1 and BlurPool(s2) precedes conv2; in a strided Bottleneck
  conv2 runs at stride 1 and BlurPool(s2) precedes conv3; shortcuts are BlurPool(s2) + 1x1 conv +
  BN. No parameters are added (ResNet-18: 11,689,512 = torchvision's).

``downsample="strided"`` / ``"blurpool"`` build the post-activation torchvision / antialiased_cnns
blocks; ``downsample="avgpool"`` builds boluoweifenda/CNN's pre-activation bottlenecks (AvgPool-then-conv
everywhere), the layout whose counts match the poster (25.5 M; torchvision's post-activation net has
25.56 M). Input 224x224 (any size divisible by 32 works).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from models import register_model
from models.layers import BlurPool2d, MaxBlurPool2d, create_conv

from ._common import check_choice, init_weights, scaled

__all__ = ["BasicBlock", "Bottleneck", "PreActBottleneck", "ImageNetResNet", "RESNET_LAYOUTS"]

RESNET_LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}
BASE_WIDTHS = (64, 128, 256, 512)
DOWNSAMPLES = ("strided", "blurpool", "avgpool")
CONVS = ("c3", "c2", "c2sp")
ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6}


def _shortcut(in_ch: int, out_ch: int, stride: int, downsample: str, filt_size: int, bn: bool = True) -> nn.Module:
    """Identity, or [downsampler] + 1x1 conv (+ BN): strided 1x1, BlurPool + 1x1, or AvgPool + 1x1."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    layers: list[nn.Module] = []
    if stride != 1 and downsample == "blurpool":
        layers.append(BlurPool2d(in_ch, filt_size=filt_size, stride=stride))
    elif stride != 1 and downsample == "avgpool":
        layers.append(nn.AvgPool2d(stride))
    layers.append(nn.Conv2d(in_ch, out_ch, 1, stride=stride if downsample == "strided" else 1, bias=False))
    if bn:
        layers.append(nn.BatchNorm2d(out_ch))
    return nn.Sequential(*layers)


def _spatial(conv: str, in_ch: int, out_ch: int, stride: int, downsample: str) -> nn.Module:
    """The block's k x k conv: strided (c3), AvgPool + stride-1 conv (``create_conv`` for even kinds,
    explicit for "avgpool"), or stride 1 when a BlurPool elsewhere does the subsampling."""
    if stride != 1 and downsample == "avgpool":
        return nn.Sequential(nn.AvgPool2d(stride), create_conv(conv, in_ch, out_ch, stride=1))
    return create_conv(conv, in_ch, out_ch, stride=stride if downsample == "strided" else 1)


class BasicBlock(nn.Module):
    """conv -> BN-ReLU -> [BlurPool] -> conv -> BN, + shortcut, ReLU (torchvision / antialiased_cnns)."""

    expansion = 1

    def __init__(self, in_ch: int, mid: int, stride: int, conv: str, downsample: str, filt_size: int, act: type) -> None:
        super().__init__()
        self.conv1 = _spatial(conv, in_ch, mid, stride, downsample)
        self.bn1 = nn.BatchNorm2d(mid)
        self.blur = BlurPool2d(mid, filt_size=filt_size, stride=stride) if stride != 1 and downsample == "blurpool" else nn.Identity()
        self.conv2 = create_conv(conv, mid, mid)
        self.bn2 = nn.BatchNorm2d(mid)
        self.shortcut = _shortcut(in_ch, mid, stride, downsample, filt_size)
        self.act = act(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blur(self.act(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 -> BN-ReLU -> spatial op -> BN-ReLU -> [BlurPool] -> 1x1 (x4) -> BN, + shortcut, ReLU.

    ``spatial`` is the block's k x k conv or involution (already carrying its stride, if any);
    ``blur`` the antialiased_cnns BlurPool before conv3 (or None).
    """

    expansion = 4

    def __init__(self, in_ch: int, mid: int, spatial: nn.Module, shortcut: nn.Module,
                 blur: Optional[nn.Module] = None, act: type = nn.ReLU) -> None:
        super().__init__()
        out_ch = mid * self.expansion
        self.conv1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = spatial
        self.bn2 = nn.BatchNorm2d(mid)
        self.blur = blur if blur is not None else nn.Identity()
        self.conv3 = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.shortcut = shortcut
        self.act = act(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.blur(self.act(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        return self.act(out + self.shortcut(x))


class PreActBottleneck(nn.Module):
    """BN-act -> 1x1 -> BN-act -> [AvgPool] k x k -> BN-act -> 1x1 (x4), + shortcut (He et al., ECCV 2016).

    The projection shortcut ([AvgPool] + 1x1, no BN) reads the pre-activated input, as in
    fb.resnet.torch's preresnet and boluoweifenda/CNN.
    """

    expansion = 4

    def __init__(self, in_ch: int, mid: int, stride: int, conv: str, act: type) -> None:
        super().__init__()
        out_ch = mid * self.expansion
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = _spatial(conv, mid, mid, stride, "avgpool")
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.shortcut = _shortcut(in_ch, out_ch, stride, "avgpool", 1, bn=False)
        self.project = not isinstance(self.shortcut, nn.Identity)
        self.act = act(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.act(self.bn2(out)))
        out = self.conv3(self.act(self.bn3(out)))
        return out + self.shortcut(pre if self.project else x)


class ImageNetResNet(nn.Module):
    """ImageNet ResNet-18/50/101 with the variants of the module docstring.

    Args:
        depth: 18, 50 or 101 (``RESNET_LAYOUTS``).
        num_classes: classifier outputs (1000 = ImageNet, what the published counts use).
        in_channels: image channels.
        conv: "c3" | "c2" | "c2sp", the blocks' k x k convs (the 7x7 stem is kept).
        downsample: "strided" (torchvision), "blurpool" (antialiased_cnns) or "avgpool"
            (boluoweifenda/CNN: AvgPool-then-conv, pre-activation bottlenecks; ResNet-50/101 only).
        filt_size: BlurPool binomial filter size (1..7) for ``downsample="blurpool"``.
        width: multiplier on the stage widths 64/128/256/512 (the 64-channel 7x7 stem is kept).
        act: "relu" | "relu6" (boluoweifenda/CNN uses ReLU6).
    """

    def __init__(self, depth: int = 50, num_classes: int = 1000, in_channels: int = 3, conv: str = "c3",
                 downsample: str = "strided", filt_size: int = 4, width: float = 1.0, act: str = "relu") -> None:
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f"ImageNet ResNet depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth}")
        check_choice("conv", conv, CONVS)
        check_choice("downsample", downsample, DOWNSAMPLES)
        check_choice("act", act, ACTS)
        kind, layout = RESNET_LAYOUTS[depth]
        preact = downsample == "avgpool"
        if preact and kind != "bottleneck":
            raise ValueError("downsample='avgpool' (boluoweifenda/CNN pre-activation bottlenecks) needs depth 50 or 101")
        why = "c2sp splits channels into 4 padding groups" if conv == "c2sp" else ""
        stem = 64  # width scales the stages only: the poster's 0.5x MACs (1127 M / 870 M) need a 64-channel stem
        mids = [scaled(b, width, 4 if conv == "c2sp" else 1, why) for b in BASE_WIDTHS]
        a = ACTS[act]
        pool: nn.Module = (MaxBlurPool2d(stem, filt_size=filt_size, stride=2) if downsample == "blurpool"
                           else nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 7, 2, 3, bias=False), nn.BatchNorm2d(stem),
                                  a(inplace=True), pool)
        blocks: list[nn.Module] = []
        in_ch = stem
        for s, (n_blocks, mid) in enumerate(zip(layout, mids)):
            for b in range(n_blocks):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(self._block(kind, preact, in_ch, mid, stride, conv, downsample, filt_size, a))
                in_ch = mid * (4 if kind == "bottleneck" else 1)
        self.layers = nn.Sequential(*blocks)
        self.head_norm = nn.Sequential(nn.BatchNorm2d(in_ch), a(inplace=True)) if preact else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_weights(self)

    @staticmethod
    def _block(kind: str, preact: bool, in_ch: int, mid: int, stride: int, conv: str, downsample: str,
               filt_size: int, act: type) -> nn.Module:
        if kind == "basic":
            return BasicBlock(in_ch, mid, stride, conv, downsample, filt_size, act)
        if preact:
            return PreActBottleneck(in_ch, mid, stride, conv, act)
        blur = BlurPool2d(mid, filt_size=filt_size, stride=stride) if stride != 1 and downsample == "blurpool" else None
        return Bottleneck(in_ch, mid, _spatial(conv, mid, mid, stride, downsample),
                          _shortcut(in_ch, mid * 4, stride, downsample, filt_size), blur, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head_norm(self.layers(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model
def resnet18(num_classes: int = 1000, in_channels: int = 3, conv: str = "c3", downsample: str = "strided",
             filt_size: int = 4, width: float = 1.0) -> ImageNetResNet:
    """ImageNet ResNet-18 (torchvision; ``downsample="blurpool"``: antialiased_cnns resnet18)."""
    return ImageNetResNet(18, num_classes, in_channels, conv, downsample, filt_size, width)


@register_model
def resnet50(num_classes: int = 1000, in_channels: int = 3, conv: str = "c3", downsample: str = "strided",
             filt_size: int = 4, width: float = 1.0, act: str = "relu") -> ImageNetResNet:
    """ImageNet ResNet-50: torchvision, antialiased_cnns (``downsample="blurpool"``) or boluoweifenda/CNN
    (``downsample="avgpool"``, ``conv="c2sp"``, ``act="relu6"``, ``width=0.5``)."""
    return ImageNetResNet(50, num_classes, in_channels, conv, downsample, filt_size, width, act)
