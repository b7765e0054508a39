"""Convolution arithmetic: output sizes, transposed-conv padding, dilation, receptive fields, costs.

Sources: Dumoulin & Visin, "A guide to convolution arithmetic for deep learning" (arXiv 1603.07285,
relationships R1-R15 of PAPERS.md 5.4); the PyTorch ``nn.Conv2d`` / ``nn.ConvTranspose2d`` /
``nn.MaxPool2d`` docs; seed document 001 (multiplications of a conv: ``n*oc*oh*ow*(ic/g)*kh*kw``,
zeros inserted by a transposed conv = ``s - 1``, dilated effective kernel ``k + (k-1)(d-1)``);
receptive fields as in Araujo et al., Distill 2019.

Notation: input size i, kernel k, padding p (each side), stride s, dilation d. Every general
function reduces to the guide's special cases::

    R1  p=0, s=1            o = i - k + 1           R8  transposed, p=0, s=1   o' = i' + k - 1
    R2  padding p           o = i - k + 2p + 1      R9  transposed, padding p  o' = i' + k - 1 - 2p
    R3  odd k, p=k//2       o = i                   R10 half padding           o' = i'
    R4  full, p=k-1         o = i + k - 1           R11 full padding           o' = i' - (k - 1)
    R5  stride s, p=0       o = (i-k)//s + 1        R12 (i-k) % s == 0         o' = s(i'-1) + k
    R6  general             o = (i+2p-k)//s + 1     R13 (i+2p-k) % s == 0      o' = s(i'-1) + k - 2p
    R7  pooling             o = (i-k)//s + 1        R14 general, a=(i+2p-k)%s  o' = s(i'-1) + a + k - 2p
    R15 dilation            o = (i + 2p - k - (k-1)(d-1))//s + 1

All of these are ``conv_output_size`` / ``conv_transpose_output_size`` / ``pool_output_size``;
R14's ``a`` is ``output_padding`` (``output_padding_for`` computes it).
"""
from __future__ import annotations

from typing import Iterable, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn as nn

__all__ = [
    "conv_output_size",
    "conv_transpose_output_size",
    "output_padding_for",
    "transpose_equivalent",
    "effective_kernel_size",
    "pool_output_size",
    "conv_macs",
    "conv_params",
    "ReceptiveField",
    "receptive_field",
    "layer_geometry",
]


def effective_kernel_size(k: int, d: int = 1) -> int:
    """Dilated kernel extent ``k + (k-1)(d-1)`` (= ``d*(k-1) + 1``)."""
    return k + (k - 1) * (d - 1)


def conv_output_size(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """Conv output size ``floor((i + 2p - k - (k-1)(d-1)) / s) + 1`` (R1-R6, R15)."""
    o = (i + 2 * p - effective_kernel_size(k, d)) // s + 1
    if o < 1:
        raise ValueError(f"kernel {k} (dilation {d}) larger than padded input {i}+2*{p}")
    return o


def _check_positive(**args: int) -> None:
    """``ValueError`` naming the first argument that is not a positive int (as torch refuses them)."""
    for name, v in args.items():
        if v < 1:
            raise ValueError(f"{name} must be positive, got {name}={v}")


def conv_transpose_output_size(i: int, k: int, s: int = 1, p: int = 0, output_padding: int = 0, d: int = 1) -> int:
    """Transposed conv output ``(i-1)s - 2p + d(k-1) + output_padding + 1`` (R8-R14, PyTorch docs).

    ``output_padding`` is R14's ``a`` and must be in ``[0, max(s, d))`` (PyTorch's rule). Sizes,
    strides and dilations must be positive, padding non-negative and the output at least 1, else
    ``ValueError`` naming the argument (torch raises on each).
    """
    _check_positive(i=i, k=k, s=s, d=d)
    if p < 0:
        raise ValueError(f"padding must be non-negative, got p={p}")
    if not 0 <= output_padding < max(s, d):
        raise ValueError(f"output_padding must be in [0, max(stride, dilation)) = [0, {max(s, d)}), got {output_padding}")
    o = (i - 1) * s - 2 * p + d * (k - 1) + output_padding + 1
    if o < 1:
        raise ValueError(f"padding p={p} too large: output size {o} for i={i}, k={k}, s={s}, d={d}")
    return o


def output_padding_for(wanted: int, i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """The ``output_padding`` a ``ConvTranspose`` (input i) needs to produce size ``wanted``.

    For the transpose of a conv that mapped ``wanted -> i`` this is R14's
    ``a = (wanted + 2p - d(k-1) - 1) mod s``. Raises ``ValueError`` if ``wanted`` is unreachable
    (the needed value is outside ``[0, max(s, d))``).
    """
    a = wanted - ((i - 1) * s - 2 * p + d * (k - 1) + 1)
    if not 0 <= a < max(s, d):
        raise ValueError(
            f"size {wanted} unreachable from {i} with k={k}, s={s}, p={p}, d={d}: needs output_padding={a}, "
            f"allowed [0, {max(s, d)})"
        )
    return a


def transpose_equivalent(i: int, k: int, s: int = 1, p: int = 0) -> dict:
    """The direct conv that a transposed conv (of a ``k, s, p`` conv with input ``i``) amounts to.

    Guide section 4 / seed 001: insert ``s - 1`` zeros between input units, pad ``k - p - 1`` on each
    side (plus ``a = (i + 2p - k) mod s`` on the bottom/right), then a unit-stride conv with the same
    k. Returns ``{"k", "stride": 1, "zeros_inserted", "padding", "a", "o_prime"}`` where ``o_prime``
    is the transposed output size for the conv's output ``i' = conv_output_size(i, k, s, p)``.
    """
    ip = conv_output_size(i, k, s, p)
    a = (i + 2 * p - k) % s
    return {"k": k, "stride": 1, "zeros_inserted": s - 1, "padding": k - p - 1, "a": a,
            "i_prime": ip, "o_prime": s * (ip - 1) + a + k - 2 * p}


def pool_output_size(i: int, k: int, s: Optional[int] = None, p: int = 0, d: int = 1, ceil_mode: bool = False) -> int:
    """Pooling output size (R7 with padding/dilation; stride defaults to k, as in torch).

    ``ceil_mode`` follows PyTorch: round up, but drop a last window that starts in the right padding.
    As in torch, padding must be at most half the effective kernel (``p <= (d(k-1)+1) // 2``),
    sizes positive and the output at least 1; otherwise ``ValueError`` naming the argument.
    """
    s = k if s is None else s
    _check_positive(i=i, k=k, s=s, d=d)
    if not 0 <= p <= effective_kernel_size(k, d) // 2:
        raise ValueError(f"pad should be at most half of the effective kernel size: p={p}, k={k}, d={d} "
                         f"(allowed 0..{effective_kernel_size(k, d) // 2})")
    num = i + 2 * p - effective_kernel_size(k, d)
    o = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (o - 1) * s >= i + p:
        o -= 1
    if o < 1:
        raise ValueError(f"kernel k={k} (dilation {d}) larger than padded input i={i}+2*{p}")
    return o


def conv_macs(n: int, ic: int, oc: int, oh: int, ow: int, kh: int, kw: Optional[int] = None, groups: int = 1) -> int:
    """Multiply-accumulates of a conv: ``n * oc * oh * ow * (ic/groups) * kh * kw`` (seed 001)."""
    kw = kh if kw is None else kw
    return n * oc * oh * ow * (ic // groups) * kh * kw


def conv_params(ic: int, oc: int, kh: int, kw: Optional[int] = None, groups: int = 1, bias: bool = False) -> int:
    """Parameters of a conv: ``(ic/groups) * oc * kh * kw (+ oc)``."""
    kw = kh if kw is None else kw
    return (ic // groups) * oc * kh * kw + (oc if bias else 0)


class ReceptiveField(NamedTuple):
    """``size`` r (pixels), ``jump`` (product of strides), ``layers`` [(name, k, s, d)] composed."""

    size: int
    jump: int
    layers: list


def _first(v) -> int:
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


def layer_geometry(m: nn.Module) -> Optional[tuple[int, int, int]]:
    """``(k, s, d)`` of a spatial layer for receptive-field purposes, or None if it has none.

    SymPadConv2d and SymPadStemConv2d (groups over the outputs) count as their effective ``(k+1)``:
    across its four groups a C2sp layer covers 3x3 and C4sp 5x5 (poster: "2 -> 3 -> 5", "4 -> 5"). Involution2d counts as ``(K, s, 1)``
    (its kernel-generating 1x1 convs / AvgPool(s) lie inside that window); OctaveConv2d as its h2h
    path ``(k, s, 1)``. Transposed convs and adaptive pools are not composable and are skipped.
    """
    from .layers.blur_pool import BlurPool2d
    from .layers.involution import Involution2d
    from .layers.octave import OctaveConv2d
    from .layers.padding import SymPadConv2d, SymPadStemConv2d

    if isinstance(m, (SymPadConv2d, SymPadStemConv2d)):
        return _first(m.kernel_size) + 1, _first(m.stride), 1
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):  # includes SamePadConv2d
        return _first(m.kernel_size), _first(m.stride), _first(m.dilation)
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        return _first(m.kernel_size), _first(m.stride), _first(m.dilation)
    if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        return _first(m.kernel_size), _first(m.stride), 1
    if isinstance(m, BlurPool2d):
        return m.filt_size, m.stride, 1
    if isinstance(m, Involution2d):
        return m.kernel_size, m.stride, 1
    if isinstance(m, OctaveConv2d):
        return m.kernel_size, m.stride, 1
    return None


_COMPOSITES = ("Involution2d", "OctaveConv2d")


def _traced_layers(model: nn.Module, input_size: Optional[Sequence[int]], exclude: Sequence[str]) -> list:
    """Spatial layers ``(name, k, s, d)`` (octave: ``(name, k, s, in_low, out_low)``) in execution order,
    from forward hooks during one eval-mode, no-grad pass of a zero input; composites' children dropped."""
    from .layers.octave import OctaveConv2d

    record: list = []
    hooks, composites = [], []
    for name, m in model.named_modules():
        if any(e in name for e in exclude):
            continue
        geo = layer_geometry(m)
        if geo is None:
            continue
        if type(m).__name__ in _COMPOSITES:
            composites.append(name)
        if isinstance(m, OctaveConv2d):
            geo = (m.kernel_size, m.stride, m.in_low > 0, m.out_low > 0)

        def hook(mod, inp, out, name=name, geo=geo):
            record.append((name, *geo))

        hooks.append(m.register_forward_hook(hook))
    if input_size is None:
        first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d,))), None)
        input_size = (first.in_channels if first is not None else 3, 64, 64)
    shape = tuple(input_size) if len(input_size) == 4 else (1, *input_size)
    p = next(model.parameters(), None)
    x = torch.zeros(shape, device=p.device if p is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return [r for r in record if not any(r[0] != c and (c == "" or r[0].startswith(c + ".")) for c in composites)]


def receptive_field(
    layers_or_model: Union[nn.Module, Iterable[Sequence[int]]],
    input_size: Optional[Sequence[int]] = None,
    exclude: Sequence[str] = ("shortcut", "skip", "proj"),
) -> ReceptiveField:
    """Receptive field ``r = 1 + sum_l (k_hat_l - 1) * prod_{j<l} s_j`` and jump ``prod s``.

    Args:
        layers_or_model: a list of ``(k, s)`` or ``(k, s, d)`` tuples (d defaults to 1), or an
            ``nn.Module``. For a module, spatial layers (see ``layer_geometry``) are collected in
            execution order with forward hooks during one real forward pass of a zero dummy input
            (no grad, eval mode, restored afterwards); children of Involution2d/OctaveConv2d are not
            counted separately.
        input_size: dummy input shape for a module, ``(C, H, W)`` or ``(N, C, H, W)``; default
            ``(C_in of the first conv, 64, 64)``.
        exclude: modules whose qualified name contains any of these substrings are skipped.
            For residual nets the result is the *sequential composition of the main path*
            (the longest path); parallel projection shortcuts must be excluded by name, otherwise
            their stride would be counted twice. Identity shortcuts add no layer.
    """
    if isinstance(layers_or_model, nn.Module):
        layers = _traced_layers(layers_or_model, input_size, exclude)
    else:
        layers = []
        for i, t in enumerate(layers_or_model):
            k, s, d = (tuple(t) + (1,))[:3] if len(t) == 2 else tuple(t)
            layers.append((str(i), int(k), int(s), int(d)))
    high, low = [(1, 1, False)], []
    for layer in layers:
        if len(layer) == 5:  # OctaveConv2d: (name, k, s, in_low, out_low)
            high, low = _octave_step(high, low, *layer[1:])
        else:
            _, k, s, d = layer
            high = [(r + (effective_kernel_size(k, d) - 1) * j, j * s, False) for r, j, _ in high]
    r, j, _ = max(high)
    return ReceptiveField(size=r, jump=j, layers=[tuple(layer[:4]) for layer in layers])


def _octave_step(high: list, low: list, k: int, s: int, in_low: bool, out_low: bool) -> tuple[list, list]:
    """Paths ``(r, jump, up)`` of the high and low branches after one OctaveConv2d (PAPERS.md 5.2).

    Every path from the input to a branch is kept (the receptive field is the longest one). Stride 2
    pools X_H (and X_L before l2l) 2x2/2 first. h2h: conv at the high jump; h2l: pool 2x2/2 then
    conv; l2l: conv at the low jump; l2h: conv at the low jump, then (stride 1) a nearest x2
    upsample, which maps each output to one low pixel: r stays, the jump halves, and ``up`` marks
    that a following 2x2/2 pool merely undoes it (it adds no extent until the next conv).
    """
    def conv(paths):
        return [(r + (k - 1) * j, j, up and k == 1) for r, j, up in paths]

    def pool(paths):
        return [(r if up else r + j, 2 * j, False) for r, j, up in paths]

    high = pool(high) if s == 2 else high
    new_high = conv(high)
    new_low = conv(pool(high)) if out_low else []
    if in_low:
        new_high += [(r, j // 2, True) for r, j, _ in conv(low)] if s == 1 else conv(low)
        if out_low:
            new_low += conv(pool(low) if s == 2 else low)
    return _longest(new_high), _longest(new_low)


def _longest(paths: list) -> list:
    """Only the longest path per (jump, up): the others can never become the longest."""
    best: dict = {}
    for r, j, up in paths:
        best[(j, up)] = max(best.get((j, up), 0), r)
    return [(r, j, up) for (j, up), r in best.items()]
