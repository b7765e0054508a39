"""CIFAR ResNets with basic blocks (He et al., "Deep Residual Learning", CVPR 2016, Sec. 4.2) and a
plain stacked-conv net, both with a pluggable spatial conv and downsampler.

Variants come from the layer factories: ``conv`` picks the kernel of Wu et al., "Convolution with
even-sized kernels and symmetric padding" (NeurIPS 2019): c2 / c4 (TF-'same' padding), c2sp / c4sp
(symmetric padding), c3 / c5; ``downsample`` picks strided convs or the ConvBlurPool of Zhang,
"Making Convolutional Networks Shift-Invariant Again" (ICML 2019).

Design choices (ResNet):

* Layout: 3x3 stem -> 3 stages of n basic blocks (depth 6n+2), widths 16/32/64 times ``width``,
  strides 1/2/2 (32 -> 16 -> 8; Fashion-MNIST 28 -> 14 -> 7), global average pool, linear.
* EVERY 3x3 conv is replaced by ``conv``, the stem included (this is how the poster's CIFAR
  parameter counts come out, PAPERS.md 1.4). c2sp/c4sp need channel counts divisible by 4, which
  the image (1 or 3 channels) is not: ``create_conv`` then picks ``SymPadStemConv2d`` (symmetric padding
  over the 4 output-channel groups), which has exactly the C2/C4 stem's params and MACs, so
  C2sp == C2 and C4sp == C4 in params and MACs (claim E3).
* Shortcut: identity when the shape is kept; option B (1x1 projection + BN) when it changes. With
  option B the ResNet-20 params are 0.1238 / 0.2725 / 0.4807 / 0.7484 M for C2 / C3 / C4 / C5
  against the poster's 0.124 / 0.272 / 0.480 / 0.747 (+0.2 % at most); option A (zero-padded
  identity) gives 0.1210 / 0.2697 / 0.4779 / 0.7456 (-2.4 % for C2), so option B it is.
* ``downsample="strided"``: odd kernels stride the block's first conv (padding k//2) and the
  shortcut is a strided 1x1 conv. Even kernels follow the official boluoweifenda/CNN code: the
  main path is AvgPool 2x2 then the stride-1 even conv (``create_conv``), the shortcut AvgPool 2x2
  then the 1x1 conv (same params as the strided 1x1).
* ``downsample="blurpool"``: the antialiased-cnns ResNet pattern, main path conv (stride 1) -> BN
  -> ReLU -> BlurPool(stride 2) -> conv2, shortcut BlurPool(stride 2) -> 1x1 conv -> BN (blur and
  1x1 conv commute). No strided conv is left; no parameters are added.
* ``downsample="maxblur"`` raises: MaxBlurPool (MaxPool(2, s1) + BlurPool) replaces *max-pooling*,
  and a CIFAR ResNet has none; silently mapping it to blurpool would hide a config error.
* Init: He normal (fan_out) convs, BN gamma 1.

Plain net (``plain``): the "deeper thin net" suggested for the even-kernel claims (PAPERS.md 1.5):
``depth`` conv-BN-ReLU layers spread over 3 stages (widths w/2w/4w, the first conv of stages 2 and 3
downsamples with the same strided / blurpool rules as the ResNet), GAP, linear.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models import register_model
from models.layers import CONV_KIND_TABLE, SPATIAL_KINDS, conv_stride_for, create_conv, create_downsample, create_shortcut_pool

from ._common import check_choice, init_weights, scaled

__all__ = ["BasicBlock", "CifarResNet", "PlainNet"]

RESNET_DOWNSAMPLE = ("strided", "blurpool")


def _check_kinds(conv: str, downsample: str, net: str) -> None:
    check_choice("conv kind", conv, SPATIAL_KINDS)
    if downsample == "maxblur":
        raise ValueError(
            f"downsample='maxblur' (MaxPool(2, s1) + BlurPool) replaces max-pooling layers, and the {net} "
            "has none (it downsamples with strided convs); use 'blurpool' (conv -> BN -> ReLU -> BlurPool) instead"
        )
    check_choice("downsample", downsample, RESNET_DOWNSAMPLE)


def _shortcut(conv: str, downsample: str, in_ch: int, out_ch: int, stride: int, filt_size: int) -> nn.Module:
    """Option-B projection: (pool) + 1x1 conv + BN; identity when the shape is kept."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    pool, conv_stride = create_shortcut_pool(conv, downsample, in_ch, stride, filt_size)
    layers = [] if isinstance(pool, nn.Identity) else [pool]  # keeps the state-dict keys of old checkpoints
    layers += [nn.Conv2d(in_ch, out_ch, 1, stride=conv_stride, bias=False), nn.BatchNorm2d(out_ch)]
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """conv -> BN -> ReLU -> aa -> conv -> BN, plus shortcut, then ReLU (aa: BlurPool or Identity)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, conv: str, downsample: str, filt_size: int) -> None:
        super().__init__()
        self.conv1 = create_conv(conv, in_ch, out_ch, stride=conv_stride_for(downsample, stride))
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.aa = create_downsample(downsample, out_ch, stride=stride, filt_size=filt_size)
        self.conv2 = create_conv(conv, out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = _shortcut(conv, downsample, in_ch, out_ch, stride, filt_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.aa(self.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al. 2016 CIFAR ResNet (6n+2 layers), see the module docstring for the design choices.

    ``feature_info`` (timm style) lists each stage's output: ``num_chs``, ``reduction`` and the
    ``module`` that produces it; ``forward_blocks`` / ``forward_stages`` return the outputs of every
    block / of the last block of each stage, so probes never look modules up by name.
    """

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        in_channels: int = 3,
        conv: str = "c3",
        downsample: str = "strided",
        filt_size: int = 4,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth}")
        _check_kinds(conv, downsample, "CIFAR ResNet")
        n = (depth - 2) // 6
        mult = CONV_KIND_TABLE[conv].channel_multiple
        why = f"conv={conv!r} splits channels into 4 padding groups" if mult > 1 else ""
        widths = [scaled(b, width, mult, why) for b in (16, 32, 64)]
        self.depth, self.conv_kind, self.downsample_kind = depth, conv, downsample
        self.stem = nn.Sequential(create_conv(conv, in_channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        in_ch = widths[0]
        for s, w in enumerate(widths):
            for b in range(n):
                blocks.append(BasicBlock(in_ch, w, 2 if (s > 0 and b == 0) else 1, conv, downsample, filt_size))
                in_ch = w
        self.layers = nn.Sequential(*blocks)  # flat, as in every saved checkpoint
        self.feature_info = [dict(num_chs=w, reduction=2 ** s, module=f"layers.{(s + 1) * n - 1}")
                             for s, w in enumerate(widths)]
        self._stage_ends = tuple((s + 1) * n - 1 for s in range(3))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_weights(self)

    def forward_blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of every residual block, in order (3n tensors)."""
        x = self.stem(x)
        outs = []
        for block in self.layers:
            x = block(x)
            outs.append(x)
        return outs

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of each stage (its last block): sizes H, H/2, H/4 (``feature_info`` order)."""
        outs = self.forward_blocks(x)
        return [outs[i] for i in self._stage_ends]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model
def resnet(num_classes: int = 10, in_channels: int = 3, depth: int = 20, conv: str = "c3",
           downsample: str = "strided", filt_size: int = 4, width: float = 1.0) -> CifarResNet:
    """CIFAR ResNet of any depth 6n+2 (ValueError otherwise)."""
    return CifarResNet(depth, num_classes, in_channels, conv=conv, downsample=downsample, filt_size=filt_size, width=width)


def _register_depth(depth: int, doc: str):
    """Register ``resnet<depth>``: the ``resnet`` builder with ``depth`` fixed (timm-style entry point)."""
    def builder(num_classes: int = 10, in_channels: int = 3, conv: str = "c3", downsample: str = "strided",
                filt_size: int = 4, width: float = 1.0) -> CifarResNet:
        return resnet(num_classes, in_channels, depth, conv, downsample, filt_size, width)
    builder.__name__ = builder.__qualname__ = f"resnet{depth}"
    builder.__doc__ = doc
    return register_model(builder)


resnet20 = _register_depth(20, "ResNet-20 (n=3): 0.27 M params with C3.")
resnet32 = _register_depth(32, "ResNet-32 (n=5).")
resnet38 = _register_depth(38, "ResNet-38 (n=6), the second point of the poster's kernel-size sweep.")
resnet44 = _register_depth(44, "ResNet-44 (n=7).")
resnet56 = _register_depth(56, "ResNet-56 (n=9): the net of the poster's feature-drift figure.")
resnet110 = _register_depth(110, "ResNet-110 (n=18).")


class PlainNet(nn.Module):
    """``depth`` x (conv -> BN -> ReLU) over 3 stages (w, 2w, 4w), GAP, linear; no shortcuts.

    Stage i gets ``depth // 3 + (i < depth % 3)`` convs (depth 8 -> 3, 3, 2). The first conv of
    stages 2 and 3 changes the width and downsamples: strided (even kernels: AvgPool 2x2 + stride-1
    conv) or conv(stride 1) -> BN -> ReLU -> BlurPool.
    """

    def __init__(
        self,
        depth: int = 8,
        width: int = 32,
        num_classes: int = 10,
        in_channels: int = 3,
        conv: str = "c3",
        downsample: str = "strided",
        filt_size: int = 4,
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 3:
            raise ValueError(f"plain net depth (number of conv layers) must be an int >= 3, got {depth}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"plain net width must be a positive int (channels of stage 1), got {width}")
        _check_kinds(conv, downsample, "plain net")
        if width % CONV_KIND_TABLE[conv].channel_multiple:
            raise ValueError(f"conv={conv!r} needs width divisible by 4, got {width}")
        layers: list[nn.Module] = []
        in_ch = in_channels
        for s in range(3):
            w = width * 2 ** s
            for i in range(depth // 3 + (s < depth % 3)):
                stride = 2 if (s > 0 and i == 0) else 1
                aa = create_downsample(downsample, w, stride=stride, filt_size=filt_size)
                layers += [create_conv(conv, in_ch, w, stride=conv_stride_for(downsample, stride)),
                           nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                layers += [] if isinstance(aa, nn.Identity) else [aa]  # keeps the state-dict keys
                in_ch = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


@register_model
def plain(num_classes: int = 10, in_channels: int = 3, depth: int = 8, width: int = 32, conv: str = "c3",
          downsample: str = "strided", filt_size: int = 4) -> PlainNet:
    """Plain stacked-conv net: ``depth`` conv layers, stage widths ``width``/2x/4x."""
    return PlainNet(depth, width, num_classes, in_channels, conv=conv, downsample=downsample, filt_size=filt_size)
