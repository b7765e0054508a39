"""Receptive fields measured from gradients, next to ``models.arithmetic.receptive_field`` (the
``receptive_field`` section of the ``conv_arithmetic`` probe)."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from experiments.arithmetic_rows import Rows
from models import create_model, list_models
from models.arithmetic import receptive_field

_ACTS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid,
         nn.Tanh, nn.Dropout, nn.Dropout2d)


def _linearised(model: nn.Module) -> nn.Module:
    """float64 copy: activations -> identity, max-pool -> avg-pool, conv taps 1/fan_in, BN identity."""
    m = copy.deepcopy(model).to(torch.float64).eval()
    for parent in list(m.modules()):
        for cname, child in list(parent.named_children()):
            if isinstance(child, _ACTS):
                setattr(parent, cname, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(parent, cname, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                    ceil_mode=child.ceil_mode))
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                mod.weight.fill_(1.0 / mod.weight[0].numel())
                if mod.bias is not None:
                    mod.bias.zero_()
            elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.reset_running_stats()
                if mod.affine:
                    mod.weight.fill_(1.0)
                    mod.bias.zero_()
    return m


def _first_in_channels(model: nn.Module) -> int:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels


def measured_receptive_field(model: nn.Module, size: int) -> tuple[int, int, int, bool]:
    """(rf_y, rf_x, jump, clipped) from the gradient of the centre unit of the last feature map."""
    m = _linearised(model)
    feats = {}

    def grab(mod, inp, out):
        feats.setdefault("y", inp[0])  # first global pool call = input of the head

    pools = [mod for mod in m.modules() if isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))]
    if not pools:
        raise ValueError("measured_receptive_field needs a model with a global (adaptive) pool")
    h = pools[0].register_forward_hook(grab)
    x = torch.ones(1, _first_in_channels(model), size, size, dtype=torch.float64, requires_grad=True)
    try:
        m(x)
    finally:
        h.remove()
    y = feats["y"]
    oh, ow = y.shape[-2:]
    y[0, :, oh // 2, ow // 2].sum().backward()
    g = x.grad[0].abs().sum(0)
    ys = torch.nonzero(g.sum(1)).flatten()
    xs = torch.nonzero(g.sum(0)).flatten()
    clipped = bool(ys.min() == 0 or xs.min() == 0 or ys.max() == size - 1 or xs.max() == size - 1)
    return int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1), size // oh, clipped


def _build_rf_model(spec: str, width: float):
    name, _, conv = spec.partition("/")
    kw = {}
    if conv:
        kw["conv"] = conv
    if name == "plain":
        kw["width"] = max(4, int(round(32 * width)))
        label_w = f"width {kw['width']}"
    else:
        kw["width"] = width
        label_w = f"width x{width:g}"
    return create_model(name, **kw), f"{spec} ({label_w})"


def rf_rows(R: Rows, specs, width: float) -> list[str]:
    missing = []
    registered = set(list_models())
    for spec in specs:
        if spec.partition("/")[0] not in registered:
            missing.append(spec)
            continue
        model, label = _build_rf_model(spec, width)
        in_ch = _first_in_channels(model)
        rf = receptive_field(model, (in_ch, 64, 64))
        # 1.5 r: even kernels' RFs are off-centre (the drift), so leave room on the bottom/right
        size = rf.jump * math.ceil((1.5 * rf.size + 4 * rf.jump) / rf.jump)
        for _ in range(3):
            rf = receptive_field(model, (in_ch, size, size))
            ry, rx, jump, clipped = measured_receptive_field(model, size)
            if not clipped:
                break
            size *= 2
        R.add("receptive_field", f"{label} at {size}x{size}", "rf size (y)", ry, rf.size,
              "models.arithmetic.receptive_field(model).size")
        R.add("receptive_field", f"{label} at {size}x{size}", "rf size (x)", rx, rf.size,
              "models.arithmetic.receptive_field(model).size")
        R.add("receptive_field", f"{label} at {size}x{size}", "jump", jump, rf.jump,
              "models.arithmetic.receptive_field(model).jump")
    return missing
