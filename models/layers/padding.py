"""Padding helpers and even-kernel convolutions: TF-style 'same' padding and symmetric padding.

Paper: Wu et al., "Convolution with even-sized kernels and symmetric padding", NeurIPS 2019
(arXiv 1903.08385). Prior implementations followed:

* ``SymPadConv2d`` -- the PyTorch ``SpConv2d`` of seed document 000 and the official TensorFlow
  code ``boluoweifenda/CNN`` (``source/nets/resnet50_c2sp.py::symmetric_padding``, k=2 only). They
  assign the four channel groups to the corners in different orders (``SYMPAD_ORDERS``): seed 000
  [TL, TR, BL, BR] (our default, ``order="seed000"``), the official code [BR, TL, BL, TR]
  (``order="official"``, whose ``tf.pad`` patterns [top, bottom, left, right] are [0,1,0,1],
  [1,0,1,0], [0,1,1,0], [1,0,0,1]). Same weights give different outputs under the two orders, so
  port official weights with ``order="official"``. The official code also accepts C % 4 != 0
  (uneven groups, with a warning); we refuse it. The k=4/6 generalisation is ours (big = k//2,
  small = k//2 - 1 so that the four groups' offsets cancel).
* ``SymPadStemConv2d`` -- ours: symmetric padding over the *output* groups, for the 1- or
  3-channel image stem that cannot be split into 4 input groups.
* ``SamePadConv2d`` / ``get_same_padding`` / ``pad_same`` -- TensorFlow ``padding='SAME'``
  (as in timm ``layers/padding.py``): total pad ``max((ceil(i/s)-1)*s + (k-1)*d + 1 - i, 0)``,
  ``total // 2`` on the left/top and the extra pixel on the right/bottom.

Conventions: ``F.pad`` order is ``(left, right, top, bottom)``. For an even kernel with 'same'
padding every layer moves content 0.5 px towards the top-left (output ``i`` sees inputs ``i`` and
``i+1`` for k=2); symmetric padding cancels this over the four channel groups.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "get_padding",
    "get_same_padding",
    "pad_same",
    "SYMPAD_ORDERS",
    "symmetric_pad_sizes",
    "symmetric_pad",
    "SamePadConv2d",
    "SymPadConv2d",
    "SymPadStemConv2d",
]

# Corner of each channel group, in group order: the group is zero-padded towards that corner.
SYMPAD_ORDERS = {
    "seed000": ("TL", "TR", "BL", "BR"),   # seed document 000's SpConv2d
    "official": ("BR", "TL", "BL", "TR"),  # boluoweifenda/CNN resnet50_c2sp.py::symmetric_padding
}


def get_padding(kernel_size: int, stride: int = 1, dilation: int = 1) -> int:
    """Symmetric ('half') padding ``((s-1) + d*(k-1)) // 2``; equals ``k//2`` for odd k, stride 1."""
    return ((stride - 1) + dilation * (kernel_size - 1)) // 2


def get_same_padding(input_size: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> int:
    """Total TF-'SAME' padding along one dimension: ``max((ceil(i/s)-1)*s + (k-1)*d + 1 - i, 0)``.

    The output size is then ``ceil(i / s)``. Split it with ``total // 2`` before and the rest after
    (the extra pixel goes to the right/bottom, as in TensorFlow).
    """
    return max((math.ceil(input_size / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - input_size, 0)


def pad_same(
    x: torch.Tensor,
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    value: float = 0.0,
) -> torch.Tensor:
    """Zero-pad an NCHW tensor TF-'SAME' style (extra pixel on the bottom/right), dynamically."""
    ih, iw = x.shape[-2:]
    ph = get_same_padding(ih, kernel_size[0], stride[0], dilation[0])
    pw = get_same_padding(iw, kernel_size[1], stride[1], dilation[1])
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=value)


def symmetric_pad_sizes(kernel_size: int, order: str = "seed000") -> list[tuple[int, int, int, int]]:
    """The four ``(left, right, top, bottom)`` pads of symmetric padding for an even kernel.

    Group g is padded towards corner ``SYMPAD_ORDERS[order][g]`` with ``big = k//2`` on that
    corner's two sides and ``small = k//2 - 1`` on the others. For k=2, "seed000" gives
    (1,0,1,0), (0,1,1,0), (1,0,0,1), (0,1,0,1); "official" gives (0,1,0,1), (1,0,1,0), (1,0,0,1),
    (0,1,1,0).
    """
    if kernel_size < 2 or kernel_size % 2:
        raise ValueError(f"symmetric padding needs an even kernel_size >= 2, got {kernel_size}")
    if order not in SYMPAD_ORDERS:
        raise ValueError(f"unknown symmetric padding order {order!r}; allowed: {', '.join(SYMPAD_ORDERS)}")
    b, s = kernel_size // 2, kernel_size // 2 - 1
    pads = {"TL": (b, s, b, s), "TR": (s, b, b, s), "BL": (b, s, s, b), "BR": (s, b, s, b)}
    return [pads[c] for c in SYMPAD_ORDERS[order]]


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last for a channels_last NCHW tensor, else contiguous."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


class _SymmetricPad(torch.autograd.Function):
    """Symmetric pad with a one-kernel backward: the gradient is one concatenation of the four groups' crops
    (plain autograd through pad + crops + cat would build, zero-fill and sum a full-size gradient per crop).

    Forward, ``fused=True``: one output allocation, each group copied once to its offset, only the border
    strips zeroed (fewest bytes: the CPU's fastest). ``fused=False``: one zero pad of ``k - 1`` on every side,
    then one concatenation of the four groups' windows (two kernels instead of twelve small ones: the
    accelerator path, where C2sp was launch-bound). Both give the same tensor, element for element."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel_size: int, order: str, fused: bool) -> torch.Tensor:
        b, c, h, w = x.shape
        q, pads = c // 4, symmetric_pad_sizes(kernel_size, order)
        ctx.kernel_size, ctx.order, ctx.hw = kernel_size, order, (h, w)
        if not fused:
            p = kernel_size - 1
            xp = F.pad(x, (p, p, p, p))
            return torch.cat([xp[:, g * q:(g + 1) * q, p - t:p - t + h + p, p - l:p - l + w + p]
                              for g, (l, _r, t, _b) in enumerate(pads)], dim=1)
        out = torch.empty(b, c, h + kernel_size - 1, w + kernel_size - 1, dtype=x.dtype, device=x.device,
                          memory_format=_memory_format(x))  # x's layout: a channels_last conv reads it as is
        for g, (l, r, t, bt) in enumerate(pads):
            o = out[:, g * q:(g + 1) * q]
            if t:
                o[:, :, :t].zero_()
            if bt:
                o[:, :, t + h:].zero_()
            if l:
                o[:, :, t:t + h, :l].zero_()
            if r:
                o[:, :, t:t + h, l + w:].zero_()
            o[:, :, t:t + h, l:l + w].copy_(x[:, g * q:(g + 1) * q])
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, w = ctx.hw
        q = grad.shape[1] // 4
        parts = [grad[:, g * q:(g + 1) * q, t:t + h, l:l + w]
                 for g, (l, _r, t, _b) in enumerate(symmetric_pad_sizes(ctx.kernel_size, ctx.order))]
        return torch.cat(parts, dim=1), None, None, None


def symmetric_pad(x: torch.Tensor, kernel_size: int, order: str = "seed000", fused: bool | None = None) -> torch.Tensor:
    """Symmetric padding of an NCHW tensor: 4 equal channel groups, each zero-padded toward a corner.

    Exactly equal to padding each group with ``F.pad(group, symmetric_pad_sizes(k, order)[g])`` and
    concatenating (seed 000). ``fused=None`` picks the forward by device: on CPU fused (one allocation, one
    copy per group, only border strips zeroed: the fastest exact variant in ``scripts/benchmark_layers.py``),
    elsewhere one pad and one concatenation (12 small kernels per layer made C2sp launch-bound on a GPU);
    ``True``/``False`` force one (benchmarks, tests). The backward is one concatenation either way. The
    result has size ``(H + k - 1, W + k - 1)``.
    """
    c = x.shape[1]
    if c % 4:
        raise ValueError(f"symmetric padding needs in_channels divisible by 4, got {c}")
    symmetric_pad_sizes(kernel_size, order)  # validates k and order
    return _SymmetricPad.apply(x, kernel_size, order, x.device.type == "cpu" if fused is None else fused)


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow-style dynamic 'same' padding (the C2 / C4 baselines of Wu et al.).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (any size; even sizes pad asymmetrically).
        stride: stride; output size is ``ceil(i / stride)``.
        bias: add a learnable bias.
        dilation: dilation (keyword extension).
        groups: conv groups (keyword extension).

    Padding is recomputed from the input size on every call: total
    ``max((ceil(i/s)-1)*s + (k-1)*d + 1 - i, 0)``, ``total//2`` on the left/top and the remainder
    (the extra pixel for even kernels) on the right/bottom, so features drift 0.5 px per even-kernel
    layer towards the top-left. The module is an ``nn.Conv2d`` (``padding=0``) whose forward applies
    ``F.pad`` first, so weights live in ``.weight``/``.bias`` and FLOP counters see a plain conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        *,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         dilation=dilation, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return self._conv_forward(x, self.weight, self.bias)


class SymPadConv2d(nn.Conv2d):
    """Even-kernel conv with symmetric padding (C2sp / C4sp of Wu et al., NeurIPS 2019).

    Args:
        in_channels: input channels; must be divisible by 4 (four equal groups, exact symmetry).
            The official TF code allows uneven groups with a warning; we refuse them.
        out_channels: output channels.
        kernel_size: even kernel size (2, 4, 6, ...); odd sizes raise ``ValueError``.
        stride: stride of the VALID conv after padding (the official code never strides an even
            conv: use ``AvgPool2d(2)`` then a stride-1 ``SymPadConv2d``; see ``create_conv``).
        bias: add a learnable bias.
        order: corner order of the four channel groups, "seed000" ([TL, TR, BL, BR], seed 000's
            ``SpConv2d``) or "official" ([BR, TL, BL, TR], boluoweifenda/CNN); see ``SYMPAD_ORDERS``.

    Channels are split into 4 groups; group g is zero-padded by ``symmetric_pad_sizes(k, order)[g]``,
    then one VALID ``k x k`` conv runs over all channels. Stride 1 keeps the spatial size; a layer
    sees a ``(k+1) x (k+1)`` window across its groups (receptive field "2 -> 3 -> 5").
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        order: str = "seed000",
    ) -> None:
        if order not in SYMPAD_ORDERS:
            raise ValueError(f"unknown symmetric padding order {order!r}; allowed: {', '.join(SYMPAD_ORDERS)}")
        if not isinstance(kernel_size, int) or kernel_size < 2 or kernel_size % 2:
            raise ValueError(f"SymPadConv2d needs an even int kernel_size (2, 4, 6, ...), got {kernel_size}")
        if in_channels % 4:
            raise ValueError(
                f"SymPadConv2d needs in_channels divisible by 4 (four equal padding groups), got in_channels={in_channels}"
            )
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=bias)
        self.order = order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(symmetric_pad(x, self.kernel_size[0], self.order), self.weight, self.bias)


class SymPadStemConv2d(nn.Conv2d):
    """Even-kernel symmetric-padding conv for inputs whose channel count is not divisible by 4.

    ``SymPadConv2d`` splits the *input* channels into 4 groups padded towards the 4 corners; an
    RGB (3) or grey (1) image cannot be split that way. This stem variant (ours) splits the
    *output* channels instead: output group g (``out_channels // 4`` channels) is a VALID
    ``k x k`` conv over all input channels zero-padded with ``symmetric_pad_sizes(k, order)[g]``.
    Each output channel is shifted by half a pixel towards its group's corner, and the four shifts
    cancel over the channel population, so no net drift enters the network; the next (symmetric)
    layers mix the groups. Weight ``[C_out, C_in, k, k]``: exactly the parameters and MACs of the
    plain C2/C4 stem (E3: symmetric padding is free). ``create_conv`` picks it for c2sp/c4sp when
    ``in_channels % 4 != 0``.

    Args:
        in_channels: input channels (any number).
        out_channels: output channels; must be divisible by 4.
        kernel_size: even kernel size.
        bias: conv bias.
        order: corner order of the output groups (``SYMPAD_ORDERS``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = False,
                 order: str = "seed000") -> None:
        if kernel_size < 2 or kernel_size % 2:
            raise ValueError(f"SymPadStemConv2d needs an even kernel_size, got {kernel_size}")
        if out_channels % 4:
            raise ValueError(f"SymPadStemConv2d needs out_channels divisible by 4, got {out_channels}")
        symmetric_pad_sizes(kernel_size, order)  # validates order
        super().__init__(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=bias)
        self.order = order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.out_channels // 4
        outs = []
        for g, pads in enumerate(symmetric_pad_sizes(self.kernel_size[0], self.order)):
            w = self.weight[g * q:(g + 1) * q]
            b = None if self.bias is None else self.bias[g * q:(g + 1) * q]
            outs.append(F.conv2d(F.pad(x, pads), w, b))
        return torch.cat(outs, dim=1)
