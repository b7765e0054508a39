"""Model complexity: parameters, MACs ("FLOPs" in all five papers), activations, per-module MACs.

Built on ``torch.utils.flop_counter.FlopCounterMode``, which counts matmul/conv-family aten ops
(``aten.convolution`` incl. grouped / depthwise / dilated / transposed / 3-D, ``mm``, ``addmm``,
``bmm``, attention) at 2 FLOPs per multiply-add; we report ``macs = flops / 2``. The involution
aggregation is the custom op ``convdesign::involution`` with a registered formula of ``C*K*K``
MACs per output pixel (PAPERS.md 3.2), so an ``Involution2d`` profiles to
``B*Ho*Wo*(C*C/r + (C/r)*K*K*G + C*K*K)``. Conventions (as in pycls / the papers):

* MACs of convs are ``n*oc*oh*ow*(ic/g)*kh*kw`` (seed 001); biases, BatchNorm, activations,
  residual adds, pooling and upsampling are **not** counted;
* ``BlurPool2d`` **is** counted: it is a depthwise conv (``C*f*f`` MACs per output pixel; f=1 is a
  slice and costs 0); SamePad/SymPad padding costs nothing, their VALID conv is counted;
* ``params`` = trainable parameters (``requires_grad``); buffers (BlurPool filters, BN stats) excluded;
* ``activations`` = output elements of every conv-like layer (``nn.Conv*``, ``nn.ConvTranspose*``,
  ``nn.Linear``, ``BlurPool2d``), with ``Involution2d`` and ``OctaveConv2d`` counted as one layer
  (their outputs only, high + low for octave), used for OctConv's memory ratio ``1 - 0.75a``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .layers.blur_pool import BlurPool2d
from .layers.involution import Involution2d
from .layers.octave import OctaveConv2d

__all__ = ["profile", "count_params"]

_ACT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
               nn.Linear, BlurPool2d, Involution2d, OctaveConv2d)
_COMPOSITES = (Involution2d, OctaveConv2d)


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _is_descendant(name: str, parent: str) -> bool:
    return name != parent and (parent == "" or name.startswith(parent + "."))


def _numel(out) -> int:
    if isinstance(out, torch.Tensor):
        return out.numel()
    if isinstance(out, (tuple, list)):
        return sum(_numel(o) for o in out if o is not None)
    return 0


def profile(model: nn.Module, input_size: Sequence[int] = (3, 32, 32), device=None) -> dict:
    """Profile one forward pass of ``model`` on a zero input.

    Args:
        model: the network (put in eval mode for the pass, its mode is restored afterwards).
        input_size: ``(C, H, W)`` (batch 1 is prepended) or a full input shape such as
            ``(N, C, H, W)`` or ``(N, C, D, H, W)`` for 3-D models.
        device: device of the dummy input; default the device of the model's first parameter.

    Returns:
        ``{"params", "params_all", "macs", "flops_2x_macs", "activations", "per_module"}`` where
        ``macs`` are multiply-adds -- what the papers call FLOPs (ResNet-50 = 4.09 G) -- and
        ``flops_2x_macs`` is torch's flop count (a multiply and an add counted apart, 2 x MACs),
        and ``per_module`` maps qualified module names (hierarchical: parents include children)
        to MACs.
    """
    shape = (1, *input_size) if len(input_size) == 3 else tuple(input_size)
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else "cpu"
    x = torch.zeros(shape, device=device)

    acts = {"n": 0}
    hooks = []
    composites = [n for n, m in model.named_modules() if isinstance(m, _COMPOSITES)]
    for name, m in model.named_modules():
        if isinstance(m, _ACT_LAYERS) and not any(_is_descendant(name, c) for c in composites):
            hooks.append(m.register_forward_hook(lambda mod, inp, out: acts.__setitem__("n", acts["n"] + _numel(out))))

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    flops = fc.get_total_flops()
    root = type(model).__name__
    per_module = {}
    for key, counts in fc.get_flop_counts().items():
        if key in ("Global", root):
            continue
        name = key[len(root) + 1:] if key.startswith(root + ".") else key
        per_module[name] = sum(counts.values()) // 2
    return {
        "params": count_params(model),
        "params_all": count_params(model, trainable_only=False),
        "macs": flops // 2,
        "flops_2x_macs": flops,
        "activations": acts["n"],
        "per_module": per_module,
    }
