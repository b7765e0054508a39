"""Involution: spatial-specific, channel-agnostic aggregation with per-pixel generated kernels.

Paper: Li et al., "Involution: Inverting the Inherence of Convolution for Visual Recognition",
CVPR 2021 (arXiv 2103.06255). Prior implementations followed: ``d-li14/involution`` (MIT),
``cls/mmcls/models/utils/involution_naive.py`` (nn.Unfold reference, reproduced by seed 003 and by
``involution_unfold`` here) and ``involution_cuda.py`` (CuPy kernels that loop over the K*K taps
instead of materialising the unfold tensor -- the idea behind our default ``involution``).

Aggregation (stride s, K x K, zero padding ``(K-1)//2``, groups G, channel c in group c // (C/G))::

    Y[b, c, i, j] = sum_{u,v} H[b, g(c), u*K+v, i, j] * X[b, c, i*s + u - (K-1)//2, j*s + v - (K-1)//2]

``involution`` is a ``torch.library`` custom op (``convdesign::involution``) with a registered
autograd formula and a registered FLOP formula (so ``torch.utils.flop_counter.FlopCounterMode`` and
``models.complexity.profile`` count ``C*K*K`` MACs per output pixel). Forward and backward save only
``x`` and ``kernel`` and loop over the K*K taps with shifted slices of the zero-padded input
(stride 1: one contiguous 1-D slice per tap of the flattened padded image, see ``_Layout``; a
channels_last ``x`` is made contiguous first, one copy instead of K*K strided passes); on CPU
in batch chunks of ~1 MiB so the 49 passes stay cache-resident, on CUDA over the whole batch at once
(49 large kernels, not 49 per chunk). Memory O(|x| + |kernel|) instead of O(K*K*|x|); low-precision
inputs accumulate in fp32. On CPU (B=32, C=64, 32x32, K=7, fwd+bwd) it is
~10x faster than the unfold reference with ~1/10 of its extra peak memory (scripts/benchmark_layers.py).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import register_flop_formula

__all__ = ["involution", "involution_unfold", "Involution2d", "involution_output_size"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def involution_output_size(i: int, kernel_size: int, stride: int = 1) -> int:
    """Output size of the aggregation: ``(i + 2*((K-1)//2) - K) // s + 1`` (= ceil(i/s) for odd K)."""
    return (i + 2 * ((kernel_size - 1) // 2) - kernel_size) // stride + 1


def _check(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int) -> tuple[int, ...]:
    if x.dim() != 4 or kernel.dim() != 5:
        raise ValueError(f"involution expects x (B,C,H,W) and kernel (B,G,K*K,Ho,Wo); got {tuple(x.shape)}, {tuple(kernel.shape)}")
    b, c, h, w = x.shape
    g = kernel.shape[1]
    ho, wo = involution_output_size(h, kernel_size, stride), involution_output_size(w, kernel_size, stride)
    if c % g or kernel.shape != (b, g, kernel_size * kernel_size, ho, wo):
        raise ValueError(
            f"kernel shape {tuple(kernel.shape)} does not fit x {tuple(x.shape)} with K={kernel_size}, "
            f"stride={stride}: expected ({b}, G, {kernel_size * kernel_size}, {ho}, {wo}) with C % G == 0"
        )
    return b, c, h, w, g, ho, wo


class _Layout:
    """Where each of the K*K taps reads in the zero-padded input.

    stride 1: the padded input (``rows x row``, ``row = W + 2p``) is flattened per channel and
    output pixel ``(i, j)`` is stored at ``q = i*row + j`` (columns ``j >= Wo`` are scratch, cropped
    at the end). Tap ``(u, v)`` then reads ``flat[u*row + v + q]``: ONE contiguous 1-D slice with a
    long inner loop, instead of a short 2-D window (extra bottom rows keep it in bounds).
    stride s > 1: 2-D strided windows ``[u : u + s*(Ho-1) + 1 : s, v : v + s*(Wo-1) + 1 : s]``.
    """

    def __init__(self, h: int, w: int, k: int, s: int) -> None:
        self.p = p = (k - 1) // 2
        self.k, self.s = k, s
        self.ho, self.wo = involution_output_size(h, k, s), involution_output_size(w, k, s)
        self.row = w + 2 * p
        if s == 1:
            self.ocols = self.row  # stored output columns (incl. scratch)
            last = (k - 1) * self.row + (k - 1) + self.ho * self.row - 1
            self.rows = max(h + 2 * p, last // self.row + 1)
        else:
            self.ocols = self.wo
            self.rows = h + 2 * p
        self.pad = (p, p, p, self.rows - h - p)  # F.pad (left, right, top, bottom)

    def view(self, t: torch.Tensor) -> torch.Tensor:
        """(B, G, Cg, rows*row) flat padded tensor -> the view the tap indices apply to."""
        return t if self.s == 1 else t.unflatten(-1, (self.rows, self.row))

    def out_shape(self) -> tuple[int, ...]:
        return (self.ho * self.ocols,) if self.s == 1 else (self.ho, self.ocols)

    def taps(self):
        k, s = self.k, self.s
        for u in range(k):
            for v in range(k):
                if s == 1:
                    off = u * self.row + v
                    idx = (slice(off, off + self.ho * self.row),)
                else:
                    idx = (slice(u, u + s * (self.ho - 1) + 1, s), slice(v, v + s * (self.wo - 1) + 1, s))
                yield u * k + v, (Ellipsis, *idx)


def _chunk(b: int, per_sample_bytes: int, device: torch.device) -> int:
    """Samples per pass of the tap loop. CPU: chunks of about 1 MiB of padded input, so the K*K passes
    stay cache-resident. Accelerators: the whole batch, K*K large kernels instead of K*K per chunk
    (each tap's launch then does B/chunk times more work; the arithmetic per element is the same)."""
    if device.type != "cpu":
        return b
    return max(1, min(b, (1 << 20) // max(per_sample_bytes, 1)))


@torch.library.custom_op("convdesign::involution", mutates_args=())
def _involution_fwd(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    b, c, h, w, g, ho, wo = _check(x, kernel, kernel_size, stride)
    lay = _Layout(h, w, kernel_size, stride)
    acc = torch.float32 if x.dtype in _LOW_PRECISION else x.dtype
    kk = kernel_size * kernel_size
    xf = lay.view(F.pad(x.contiguous(), lay.pad).view(b, g, c // g, lay.rows * lay.row))
    # kernel laid out like the output (scratch columns zero), (B, G, 1, K*K, *out_shape)
    kf = F.pad(kernel.to(acc), (0, lay.ocols - wo)).view(b, g, 1, kk, *lay.out_shape())
    out = torch.zeros(b, g, c // g, *lay.out_shape(), dtype=acc, device=x.device)
    step = _chunk(b, xf[0].numel() * xf.element_size(), x.device)
    for b0 in range(0, b, step):
        o, xc, kc = out[b0:b0 + step], xf[b0:b0 + step], kf[b0:b0 + step]
        for t, idx in lay.taps():
            o.addcmul_(xc[idx], kc[:, :, :, t])
    return out.view(b, c, ho, lay.ocols)[..., :wo].to(x.dtype, copy=True)


@_involution_fwd.register_fake
def _(x, kernel, kernel_size, stride):
    b, c, h, w = x.shape
    return x.new_empty(b, c, involution_output_size(h, kernel_size, stride), involution_output_size(w, kernel_size, stride))


@torch.library.custom_op("convdesign::involution_backward", mutates_args=())
def _involution_bwd(
    grad: torch.Tensor, x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    b, c, h, w, g, ho, wo = _check(x, kernel, kernel_size, stride)
    lay = _Layout(h, w, kernel_size, stride)
    acc = torch.float32 if x.dtype in _LOW_PRECISION else x.dtype
    kk = kernel_size * kernel_size
    xf = lay.view(F.pad(x.contiguous(), lay.pad).view(b, g, c // g, lay.rows * lay.row))
    # zero scratch columns in the output gradient, so they scatter nothing into grad_x
    go = F.pad(grad.to(acc), (0, lay.ocols - wo)).reshape(b, g, c // g, *lay.out_shape())
    kf = F.pad(kernel.to(acc), (0, lay.ocols - wo)).view(b, g, 1, kk, *lay.out_shape())
    gxf = torch.zeros(b, g, c // g, lay.rows * lay.row, dtype=acc, device=x.device)
    gxv = lay.view(gxf)
    gk = torch.empty(b, g, kk, *lay.out_shape(), dtype=acc, device=x.device)
    step = _chunk(b, xf[0].numel() * xf.element_size(), x.device)
    for b0 in range(0, b, step):
        e = b0 + step
        goc, xc, kc, gxc, gkc = go[b0:e], xf[b0:e], kf[b0:e], gxv[b0:e], gk[b0:e]
        for t, idx in lay.taps():
            torch.sum(goc * xc[idx], dim=2, out=gkc[:, :, t])  # per-tap reduction over group channels
            gxc[idx].addcmul_(goc, kc[:, :, :, t])  # scatter-add shifted products
    p = lay.p
    gx = gxf.view(b, c, lay.rows, lay.row)[..., p:p + h, p:p + w].to(x.dtype, copy=True)
    gk = gk.view(b, g, kk, ho, lay.ocols)[..., :wo].to(kernel.dtype, copy=True)
    return gx, gk


@_involution_bwd.register_fake
def _(grad, x, kernel, kernel_size, stride):
    # contiguous, as the op returns them (empty_like would copy a channels_last x's strides: torch.compile fails)
    return x.new_empty(x.shape), kernel.new_empty(kernel.shape)


def _setup_context(ctx, inputs, output):
    x, kernel, kernel_size, stride = inputs
    ctx.save_for_backward(x, kernel)
    ctx.kernel_size, ctx.stride = kernel_size, stride


def _backward(ctx, grad):
    x, kernel = ctx.saved_tensors
    gx, gk = _involution_bwd(grad.contiguous(), x, kernel, ctx.kernel_size, ctx.stride)
    return gx, gk, None, None


_involution_fwd.register_autograd(_backward, setup_context=_setup_context)


@register_flop_formula(torch.ops.convdesign.involution)
def _involution_flop(x_shape, kernel_shape, kernel_size, stride, *args, out_shape=None, **kwargs) -> int:
    b, c = x_shape[:2]
    ho, wo = kernel_shape[-2:]
    return 2 * b * c * kernel_size * kernel_size * ho * wo  # flop counter convention: 1 MAC = 2 FLOPs


@register_flop_formula(torch.ops.convdesign.involution_backward)
def _involution_bwd_flop(grad_shape, x_shape, kernel_shape, kernel_size, stride, *args, out_shape=None, **kwargs) -> int:
    return 2 * _involution_flop(x_shape, kernel_shape, kernel_size, stride)  # grad_x + grad_kernel


def involution(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int = 1) -> torch.Tensor:
    """Memory-lean involution aggregation (custom op; autograd, CPU/CUDA, fp32/fp64/bf16/fp16).

    Args:
        x: input ``(B, C, H, W)``; its channels are split into G contiguous groups.
        kernel: per-pixel kernels ``(B, G, K*K, Ho, Wo)``, taps in row-major ``(u, v)`` order
            (as ``nn.Unfold``); cast to ``x.dtype`` so the output dtype follows ``x``.
        kernel_size: K (zero padding ``(K-1)//2``, dilation 1).
        stride: s; ``Ho = (H + 2*((K-1)//2) - K)//s + 1``.

    Equals ``involution_unfold`` (seed 003) forward and backward but never builds the K*K-times
    larger unfold buffer. Works under autocast (the op itself is not autocast; low-precision
    inputs are accumulated in fp32).
    """
    if kernel.dtype != x.dtype:
        kernel = kernel.to(x.dtype)
    return _involution_fwd(x, kernel, kernel_size, stride)


def involution_unfold(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int = 1) -> torch.Tensor:
    """Reference aggregation of seed 003 / mmcls ``involution_naive``: ``nn.Unfold`` then multiply-sum.

    Materialises a ``(B, C*K*K, Ho*Wo)`` buffer; kept for tests and the benchmark.
    """
    b, c, h, w = x.shape
    g = kernel.shape[1]
    ho, wo = kernel.shape[-2:]
    cols = F.unfold(x, kernel_size, dilation=1, padding=(kernel_size - 1) // 2, stride=stride)
    cols = cols.view(b, g, c // g, kernel_size * kernel_size, ho, wo)
    return (kernel.unsqueeze(2) * cols).sum(dim=3).view(b, c, ho, wo)


class Involution2d(nn.Module):
    """Involution layer (kernel generation + aggregation), as in RedNet (d-li14/involution).

    Args:
        channels: input = output channels C; must be a multiple of ``group_channels``.
        kernel_size: K of the generated per-pixel kernels (paper default 7).
        stride: aggregation stride; for ``stride > 1`` kernels are generated from
            ``AvgPool2d(stride, stride)(x)``.
        group_channels: channels sharing one kernel (paper 16), ``G = C // group_channels``
            (CIFAR widths 16 / 32 give G = 1 / 2). ``group_channels > channels`` raises ValueError.
        reduction_ratio: r of the kernel-generation bottleneck (paper 4).

    Kernel generation: ``conv1`` = 1x1 conv C -> C//r (no bias) + BN + ReLU, ``conv2`` = 1x1 conv
    C//r -> K*K*G with bias. Params ``C*C/r + (C/r)*K*K*G`` (+ BN, bias); MACs per output pixel
    ``C*C/r + (C/r)*K*K*G + C*K*K``.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 7,
        stride: int = 1,
        group_channels: int = 16,
        reduction_ratio: int = 4,
    ) -> None:
        super().__init__()
        if group_channels <= 0 or group_channels > channels or channels % group_channels:
            raise ValueError(
                f"Involution2d needs channels to be a positive multiple of group_channels; got "
                f"channels={channels}, group_channels={group_channels}"
            )
        mid = channels // reduction_ratio
        if mid < 1:
            raise ValueError(f"channels // reduction_ratio must be >= 1; got {channels} // {reduction_ratio}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.group_channels = group_channels
        self.groups = channels // group_channels
        self.reduction_ratio = reduction_ratio
        self.avgpool = nn.AvgPool2d(stride, stride) if stride > 1 else nn.Identity()
        self.conv1 = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(channels, mid, 1, bias=False),
            bn=nn.BatchNorm2d(mid),
            act=nn.ReLU(inplace=True),
        ))
        self.conv2 = nn.Conv2d(mid, kernel_size * kernel_size * self.groups, 1, bias=True)

    def extra_repr(self) -> str:
        return (f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"group_channels={self.group_channels}, reduction_ratio={self.reduction_ratio}")

    def make_kernel(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel kernels ``(B, G, K*K, Ho, Wo)`` generated from ``x``."""
        w = self.conv2(self.conv1(self.avgpool(x)))
        b, _, h, wd = w.shape
        return w.view(b, self.groups, self.kernel_size * self.kernel_size, h, wd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return involution(x, self.make_kernel(x), self.kernel_size, self.stride)
