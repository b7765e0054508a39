"""Probe: convolution arithmetic of seed 001's catalogue, measured vs analytic, in one table.

Sources: seed document 001 (vanilla, grouped, depthwise-separable, transposed, dilated, octave and
3-D convolutions; multiplications ``n*oc*oh*ow*(ic/g)*kh*kw``), Dumoulin & Visin's guide
(PAPERS.md 5.4, R1-R15), OctConv (Chen et al., ICCV 2019; PAPERS.md 5.1 O3: MACs
``1 - 1.5a + 0.75a^2`` and memory ``1 - 0.75a`` of a vanilla conv) and the even-kernel poster
(PAPERS.md 1.4: ResNet-20 params, claim E3: symmetric padding adds no params or FLOPs).

Every row puts ... see ``SETUP`` (also the run README's Setup section).

Outputs: ``arithmetic.csv`` (section, name, quantity, measured, analytic, agree, tol,
analytic_source), ``arithmetic.md`` (markdown table generated from the CSV), ``octave_ratios.png``.
"""
from __future__ import annotations

import copy
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from experiments.probe_utils import log_outputs, plt, read_csv, write_csv, write_readme
from models import create_model, list_models
from models.arithmetic import (
    conv_macs,
    conv_output_size,
    conv_params,
    conv_transpose_output_size,
    effective_kernel_size,
    output_padding_for,
    receptive_field,
)
from models.complexity import profile
from models.layers import SPATIAL_KINDS, DepthwiseSeparableConv2d, OctaveConv2d

# What the probe does, written into its README ("Setup"); the module docstring points here.
SETUP = """\
Every row puts a *measured* quantity next to an *analytic* one (training-free, exact):

- ``output_size``: torch's real output shapes (``nn.Conv2d``, ``nn.ConvTranspose2d``, ``nn.Conv3d``)
  vs ``models.arithmetic.conv_output_size`` / ``conv_transpose_output_size`` (the guide's R1-R15,
  seed 001's examples); ``output_padding_for`` checked by building the transposed conv with it;
  ``effective_kernel_size`` vs the extent of a dilated kernel's impulse response.
- ``complexity``: params and MACs from ``models.complexity.profile`` (torch's FlopCounterMode,
  MACs = FLOPs/2) vs seed 001's formula (``models.arithmetic.conv_macs`` / ``conv_params``; a
  transposed conv costs what its forward conv costs; 3-D: ``n*oc*od*oh*ow*(ic/g)*kd*kh*kw``), for
  vanilla, grouped (g = 2, 4), depthwise-separable (and its cost ratio ``1/C_out + 1/k^2``),
  transposed (with output_padding), dilated and 3-D convs.
- ``octave``: ``OctaveConv2d`` (C = 64 in and out, alpha_in = alpha_out = a, 3x3, 32x32) profiled
  against a vanilla 3x3 conv: the MAC ratio vs ``1 - 1.5a + 0.75a^2`` and the output-activation
  ratio (``profile``'s ``activations``: high + low output elements) vs ``1 - 0.75a``, for
  a = 0, .125, .25, .5, .75 (a*64 is an integer for all of them, so the ratios are exact).
- ``receptive_field``: ``models.arithmetic.receptive_field(model, input_size).size`` / ``.jump``
  vs a gradient measurement: a float64 copy of the model with every activation replaced by
  identity, max-pools by average pools of the same geometry (max-pool gradients reach one input
  per window only), all conv weights set to 1/fan_in, BN to identity statistics and biases 0 is
  fed an all-ones input; the extent of the non-zero gradient of the centre unit of the last
  feature map (input of the global pool) is the measured RF, the input/output size ratio the jump.
  The input is large enough that the RF is not clipped by the border (checked). The RF does not
  depend on channel counts, so models are built with a small width (stated per row) to stay fast.
- ``models``: ResNet-20 params per kernel vs the poster's values (PAPERS.md 1.4, 0.5 % tolerance:
  three significant digits), and C2sp == C2, C4sp == C4 in params and MACs (E3).
"""

COLUMNS = ["section", "name", "quantity", "measured", "analytic", "agree", "tol", "analytic_source"]
# ResNet-20 params (M) read from the poster's x-positions (PAPERS.md 1.4)
POSTER_RESNET20_PARAMS_M = {"c2": 0.124, "c3": 0.272, "c4": 0.480, "c5": 0.747}
DEFAULT_RF_MODELS = ("resnet20/c3", "resnet20/c2", "resnet20/c2sp", "resnet20/c4", "resnet20/c5", "plain/c3",
                     "plain/c2sp", "vgg13_bn", "mobilenet_cifar")


class _Rows:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, section: str, name: str, quantity: str, measured, analytic, source: str, tol: float = 0.0,
            rel: bool = False) -> None:
        m, a = float(measured), float(analytic)
        err = abs(m - a) / abs(a) if rel and a != 0 else abs(m - a)
        self.rows.append({"section": section, "name": name, "quantity": quantity,
                          "measured": int(m) if m.is_integer() and not rel and tol == 0 else m,
                          "analytic": int(a) if a.is_integer() and not rel and tol == 0 else a,
                          "agree": int(err <= tol), "tol": f"{tol:g}{' rel' if rel else ''}",
                          "analytic_source": source})


# --------------------------------------------------------------------------------------------------
# output sizes
# --------------------------------------------------------------------------------------------------
def _output_size_rows(R: _Rows) -> None:
    # (label, i, k, s, p, d): seed 001's animations and the guide's relationships
    convs = [
        ("R1 no padding, unit stride", 4, 3, 1, 0, 1),
        ("R2 padding p=2", 5, 4, 1, 2, 1),
        ("R3 half padding", 5, 3, 1, 1, 1),
        ("R4 full padding", 5, 3, 1, 2, 1),
        ("R5 stride 2, no padding", 5, 3, 2, 0, 1),
        ("R6 general (i=6,k=3,s=2,p=1)", 6, 3, 2, 1, 1),
        ("R6 general (i=5,k=3,s=2,p=1)", 5, 3, 2, 1, 1),
        ("seed001 N=1,C=3->2,k3,s2,p2", 5, 3, 2, 2, 1),
        ("R15 dilation 2", 7, 3, 1, 0, 2),
        ("R15 dilation 3, s2, p1", 15, 3, 2, 1, 3),
        ("even k=2 'valid'", 32, 2, 1, 0, 1),
        ("CIFAR 3x3 stride 2", 32, 3, 2, 1, 1),
    ]
    for label, i, k, s, p, d in convs:
        y = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False)(torch.zeros(1, 1, i, i))
        R.add("output_size", f"conv {label}: i={i},k={k},s={s},p={p},d={d}", "o", y.shape[-1],
              conv_output_size(i, k, s, p, d), "models.arithmetic.conv_output_size (R1-R6, R15)")
    # (label, i', k, s, p, output_padding): the transposes of the convs above
    transposed = [
        ("R8 (of R1)", 2, 3, 1, 0, 0),
        ("R9 (of R2)", 6, 4, 1, 2, 0),
        ("R10 half padding", 5, 3, 1, 1, 0),
        ("R11 full padding", 7, 3, 1, 2, 0),
        ("R12 (of R5)", 2, 3, 2, 0, 0),
        ("R13 (of i=5,k=3,s=2,p=1)", 3, 3, 2, 1, 0),
        ("R14 (of i=6,k=3,s=2,p=1), a=1", 3, 3, 2, 1, 1),
        ("decoder 16->32, k3,s2,p1, a=1", 16, 3, 2, 1, 1),
        ("decoder 16->32, k4,s2,p1", 16, 4, 2, 1, 0),
    ]
    for label, i, k, s, p, a in transposed:
        y = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=a, bias=False)(torch.zeros(1, 1, i, i))
        R.add("output_size", f"transposed {label}: i'={i},k={k},s={s},p={p},a={a}", "o'", y.shape[-1],
              conv_transpose_output_size(i, k, s, p, a), "models.arithmetic.conv_transpose_output_size (R8-R14)")
    # output_padding_for: undo a conv wanted -> i; the transposed conv built with it must give `wanted`
    for wanted, k, s, p in [(6, 3, 2, 1), (5, 3, 2, 1), (32, 3, 2, 1), (31, 3, 2, 1), (33, 5, 4, 2), (30, 5, 4, 2)]:
        i = conv_output_size(wanted, k, s, p)
        a = output_padding_for(wanted, i, k, s, p)
        y = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=a, bias=False)(torch.zeros(1, 1, i, i))
        R.add("output_size", f"output_padding_for: conv {wanted}->{i} (k={k},s={s},p={p}) undone with a={a}",
              "o' (transposed with a)", y.shape[-1], wanted, "wanted size; a = models.arithmetic.output_padding_for")
    # effective kernel size of a dilated kernel = extent of its impulse response
    for k, d in [(3, 1), (3, 2), (3, 4), (3, 6), (5, 2), (2, 3)]:
        x = torch.zeros(1, 1, 41, 41, dtype=torch.float64)
        x[0, 0, 20, 20] = 1.0
        y = F.conv2d(x, torch.ones(1, 1, k, k, dtype=torch.float64), padding=d * (k - 1), dilation=d)
        rows = torch.nonzero(y[0, 0].sum(1))
        R.add("output_size", f"dilated kernel k={k}, d={d}", "k_hat (impulse extent)",
              int(rows.max() - rows.min() + 1), effective_kernel_size(k, d),
              "models.arithmetic.effective_kernel_size: k + (k-1)(d-1)")
    # 3-D conv: per-dimension output sizes
    d_in, h_in = 8, 16
    y = nn.Conv3d(4, 8, (3, 3, 3), stride=(1, 2, 2), padding=(1, 1, 1), bias=False)(torch.zeros(1, 4, d_in, h_in, h_in))
    R.add("output_size", "conv3d 4->8, k3, s(1,2,2), p1: depth 8", "o_depth", y.shape[2],
          conv_output_size(d_in, 3, 1, 1), "models.arithmetic.conv_output_size per dimension")
    R.add("output_size", "conv3d 4->8, k3, s(1,2,2), p1: height 16", "o_height", y.shape[3],
          conv_output_size(h_in, 3, 2, 1), "models.arithmetic.conv_output_size per dimension")


# --------------------------------------------------------------------------------------------------
# params / MACs of the catalogue
# --------------------------------------------------------------------------------------------------
def _complexity_rows(R: _Rows) -> None:
    n, c, hw = 1, 64, 32
    src_p = "seed 001: (ic/g)*oc*kh*kw (models.arithmetic.conv_params)"
    src_m = "seed 001: n*oc*oh*ow*(ic/g)*kh*kw (models.arithmetic.conv_macs)"

    def conv_case(name, ic, oc, k, s=1, p=None, d=1, g=1, bias=False, i=hw):
        p = d * (k - 1) // 2 if p is None else p
        m = nn.Conv2d(ic, oc, k, stride=s, padding=p, dilation=d, groups=g, bias=bias)
        prof = profile(m, (n, ic, i, i))
        o = conv_output_size(i, k, s, p, d)
        R.add("complexity", name, "params", prof["params"], conv_params(ic, oc, k, groups=g, bias=bias), src_p)
        R.add("complexity", name, "macs", prof["macs"], conv_macs(n, ic, oc, o, o, k, groups=g), src_m)
        return prof

    conv_case("seed001 vanilla 3->2, k3, s2, p2 on 5x5", 3, 2, 3, s=2, p=2, i=5)
    std = conv_case("vanilla 64->64, k3, p1 on 32x32", c, c, 3)
    conv_case("vanilla 64->128, k3, s2, p1, bias on 32x32", c, 2 * c, 3, s=2, bias=True)
    for g in (2, 4):
        prof = conv_case(f"grouped g={g} 64->64, k3 on 32x32", c, c, 3, g=g)
        R.add("complexity", f"grouped g={g} / vanilla", "macs ratio", prof["macs"] / std["macs"], 1 / g,
              "1/g (seed 001)", tol=1e-12)
    conv_case("depthwise g=64 64->64, k3 on 32x32", c, c, 3, g=c)
    for d in (2, 4):
        conv_case(f"dilated d={d} 64->64, k3, p={d} on 32x32", c, c, 3, d=d)

    # depthwise-separable (models.layers.DepthwiseSeparableConv2d)
    oc, k = 128, 3
    dws = DepthwiseSeparableConv2d(c, oc, k)
    prof = profile(dws, (n, c, hw, hw))
    std_oc = profile(nn.Conv2d(c, oc, k, padding=1, bias=False), (n, c, hw, hw))
    name = f"depthwise-separable 64->{oc}, k3 on 32x32"
    R.add("complexity", name, "params", prof["params"],
          conv_params(c, c, k, groups=c) + conv_params(c, oc, 1), "C_in*k^2 + C_in*C_out (PAPERS.md 5.4)")
    R.add("complexity", name, "macs", prof["macs"],
          conv_macs(n, c, c, hw, hw, k, groups=c) + conv_macs(n, c, oc, hw, hw, 1), "depthwise + pointwise (seed 001)")
    R.add("complexity", f"{name} / standard conv", "macs ratio", prof["macs"] / std_oc["macs"],
          1 / oc + 1 / k**2, "1/C_out + 1/k^2 (PAPERS.md 5.4)", tol=1e-12)

    # transposed conv with output_padding: costs what the forward conv it transposes costs
    ic_t, oc_t, k, s, p, a, i = 32, 16, 3, 2, 1, 1, 16
    tconv = nn.ConvTranspose2d(ic_t, oc_t, k, stride=s, padding=p, output_padding=a, bias=False)
    prof = profile(tconv, (n, ic_t, i, i))
    R.add("complexity", f"transposed {ic_t}->{oc_t}, k3, s2, p1, a=1, 16->32", "params", prof["params"],
          conv_params(oc_t, ic_t, k), src_p)
    R.add("complexity", f"transposed {ic_t}->{oc_t}, k3, s2, p1, a=1, 16->32", "macs", prof["macs"],
          conv_macs(n, oc_t, ic_t, i, i, k), "n*ic*ih*iw*oc*kh*kw: the forward conv's MACs (conv_macs swapped)")

    # 3-D conv
    ic3, oc3, k3, d_in, h_in = 4, 8, 3, 8, 16
    m3 = nn.Conv3d(ic3, oc3, k3, stride=(1, 2, 2), padding=1, bias=False)
    prof = profile(m3, (n, ic3, d_in, h_in, h_in))
    od, oh = conv_output_size(d_in, k3, 1, 1), conv_output_size(h_in, k3, 2, 1)
    R.add("complexity", "conv3d 4->8, k3, s(1,2,2), p1 on 8x16x16", "params", prof["params"], ic3 * oc3 * k3**3,
          "ic*oc*kd*kh*kw")
    R.add("complexity", "conv3d 4->8, k3, s(1,2,2), p1 on 8x16x16", "macs", prof["macs"],
          n * oc3 * od * oh * oh * ic3 * k3**3, "n*oc*od*oh*ow*ic*kd*kh*kw (seed 001, one more dim)")


# --------------------------------------------------------------------------------------------------
# octave
# --------------------------------------------------------------------------------------------------
class _OctaveFromTensor(nn.Module):
    """Feeds an ``OctaveConv2d`` from one tensor: first (1-a)C channels full-res, the rest pooled 2x."""

    def __init__(self, conv: OctaveConv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor):
        hi, lo = x[:, : self.conv.in_high], x[:, self.conv.in_high:]
        return self.conv((hi, F.avg_pool2d(lo, 2)) if self.conv.in_low else hi)


def _octave_rows(R: _Rows, alphas, channels: int, size: int) -> list[dict]:
    base = profile(nn.Conv2d(channels, channels, 3, padding=1, bias=False), (1, channels, size, size))
    out = []
    for a in alphas:
        a = float(a)
        oct_ = _OctaveFromTensor(OctaveConv2d(channels, channels, 3, alpha_in=a, alpha_out=a, padding=1))
        prof = profile(oct_, (1, channels, size, size))
        mac_ratio = prof["macs"] / base["macs"]
        mem_ratio = prof["activations"] / base["activations"]
        name = f"OctaveConv2d a={a:g} vs Conv2d ({channels}->{channels}, k3, {size}x{size})"
        R.add("octave", name, "macs ratio", mac_ratio, 1 - 1.5 * a + 0.75 * a**2, "1 - 1.5a + 0.75a^2 (OctConv O3)",
              tol=1e-9)
        R.add("octave", name, "activation-memory ratio", mem_ratio, 1 - 0.75 * a, "1 - 0.75a (OctConv O3)", tol=1e-9)
        lo = int(a * channels)
        hi = channels - lo
        analytic_macs = (conv_macs(1, hi, hi, size, size, 3) + conv_macs(1, hi, lo, size // 2, size // 2, 3)
                         + conv_macs(1, lo, hi, size // 2, size // 2, 3) + conv_macs(1, lo, lo, size // 2, size // 2, 3))
        R.add("octave", name, "macs", prof["macs"], analytic_macs, "h2h + h2l + l2h + l2l conv_macs (half res for *2l, l2*)")
        R.add("octave", name, "params", prof["params"], conv_params(channels, channels, 3),
              "= vanilla conv params (the four kernels partition it)")
        out.append({"alpha": a, "mac_ratio": mac_ratio, "mem_ratio": mem_ratio})
    return out


# --------------------------------------------------------------------------------------------------
# receptive fields
# --------------------------------------------------------------------------------------------------
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


def _rf_rows(R: _Rows, specs, width: float) -> list[str]:
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


def _model_rows(R: _Rows) -> None:
    profs = {k: profile(create_model("resnet20", conv=k), (3, 32, 32)) for k in SPATIAL_KINDS}
    for k, v in POSTER_RESNET20_PARAMS_M.items():
        R.add("models", f"resnet20/{k}", "params (M)", profs[k]["params"] / 1e6, v,
              "poster x-position (PAPERS.md 1.4), 3 significant digits", tol=0.005, rel=True)
    for sp, base in (("c2sp", "c2"), ("c4sp", "c4")):
        for q in ("params", "macs"):
            R.add("models", f"resnet20/{sp} vs resnet20/{base}", q, profs[sp][q], profs[base][q],
                  f"E3: symmetric padding adds no {q}")


def _write_markdown(csv_path: str, md_path: str, title: str) -> None:
    rows = read_csv(csv_path)
    cols = ["section", "name", "quantity", "measured", "analytic", "agree", "tol", "analytic_source"]

    def fmt(v: str) -> str:
        try:
            f = float(v)
        except ValueError:
            return v
        if f.is_integer() and "." not in v and "e" not in v.lower():
            return v
        return f"{f:.6g}"

    n_ok = sum(r["agree"] == "1" for r in rows)
    lines = [f"# {title}", "", f"{n_ok}/{len(rows)} rows agree. Generated from `arithmetic.csv` by "
             "`experiments/conv_arithmetic.py`; do not edit by hand.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        r = dict(r, agree="yes" if r["agree"] == "1" else "**NO**")
        lines.append("| " + " | ".join(fmt(r[c]).replace("|", "\\|") for c in cols) + " |")
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")


@torch.no_grad()
def _no_grad_sections(R: _Rows, octave_alphas, octave_channels: int, octave_size: int):
    _output_size_rows(R)
    _complexity_rows(R)
    octs = _octave_rows(R, octave_alphas, octave_channels, octave_size)
    _model_rows(R)
    return octs


def compute(octave_alphas, octave_channels: int, octave_size: int, rf_models, rf_width: float):
    """Every section's rows, the octave cost ratios, and the RF models that are not registered."""
    R = _Rows()
    octs = _no_grad_sections(R, octave_alphas, octave_channels, octave_size)
    missing = _rf_rows(R, list(rf_models or []), rf_width)  # needs autograd
    return R.rows, octs, missing


def plot_octave_ratios(octs: list[dict], octave_channels: int, octave_size: int, path: str) -> None:
    """octave_ratios.png: measured MAC / memory ratios of OctaveConv2d vs the O3 formulas."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    aa = [i / 100 for i in range(0, 101)]
    ax.plot(aa, [1 - 1.5 * a + 0.75 * a**2 for a in aa], "-", color="tab:blue", label="MACs: 1 - 1.5a + 0.75a^2")
    ax.plot(aa, [1 - 0.75 * a for a in aa], "-", color="tab:orange", label="memory: 1 - 0.75a")
    ax.plot([o["alpha"] for o in octs], [o["mac_ratio"] for o in octs], "o", color="tab:blue",
            label="measured MACs (models.complexity.profile)")
    ax.plot([o["alpha"] for o in octs], [o["mem_ratio"] for o in octs], "s", color="tab:orange",
            label="measured output activations")
    for o in octs:
        ax.annotate(f"{o['mac_ratio']:.3f}", (o["alpha"], o["mac_ratio"]), textcoords="offset points",
                    xytext=(4, -11), fontsize=7, color="tab:blue")
    ax.set_xlabel("alpha (fraction of low-frequency channels)")
    ax.set_ylabel("OctaveConv2d / Conv2d")
    ax.set_title(f"OctConv cost vs a vanilla conv ({octave_channels}->{octave_channels}, 3x3, "
                 f"{octave_size}x{octave_size}, alpha_in = alpha_out)", fontsize=9)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarise(rows: list[dict], octs: list[dict], missing: list[str]) -> dict:
    """Agreement counts per section and the measured octave ratios per alpha."""
    metrics: dict = {
        "all_agree": int(all(r["agree"] for r in rows)),
        "n_rows": len(rows),
        "n_disagree": sum(1 - r["agree"] for r in rows),
        "rf_models_missing": len(missing),
    }
    for sec in ("output_size", "complexity", "octave", "receptive_field", "models"):
        metrics[f"n_rows_{sec}"] = sum(r["section"] == sec for r in rows)
    for o in octs:
        tag = f"{o['alpha']:g}".replace(".", "")
        metrics[f"octave_mac_ratio_a{tag}"] = o["mac_ratio"]
        metrics[f"octave_mem_ratio_a{tag}"] = o["mem_ratio"]
    return metrics


def _readme_setup(rows: list[dict], missing: list[str]) -> str:
    """SETUP, plus the skipped models and every disagreeing row of this run."""
    setup = SETUP
    if missing:
        setup += f"\nSkipped (model not registered): {', '.join(missing)}.\n"
    bad = [f"{r['section']} / {r['name']} / {r['quantity']}: measured {r['measured']} vs analytic {r['analytic']}"
           for r in rows if not r["agree"]]
    if bad:
        setup += "\nRows that DISAGREE:\n\n" + "\n".join(f"- {b}" for b in bad) + "\n"
    return setup


def run(out_dir: str, logger, octave_alphas=(0.0, 0.125, 0.25, 0.5, 0.75), octave_channels: int = 64,
        octave_size: int = 32, rf_models=DEFAULT_RF_MODELS, rf_width: float = 0.25) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    rows, octs, missing = compute(octave_alphas, octave_channels, octave_size, rf_models, rf_width)
    csv_path = write_csv(os.path.join(out_dir, "arithmetic.csv"), COLUMNS, rows)
    _write_markdown(csv_path, os.path.join(out_dir, "arithmetic.md"), "Convolution arithmetic: measured vs analytic")
    plot_octave_ratios(octs, octave_channels, octave_size, os.path.join(out_dir, "octave_ratios.png"))
    metrics = summarise(rows, octs, missing)
    log_outputs(logger, out_dir, tables={"arithmetic": "arithmetic.csv"}, images={"octave_ratios": "octave_ratios.png"})
    write_readme(out_dir, "conv_arithmetic: measured vs analytic convolution arithmetic",
                 _readme_setup(rows, missing), metrics,
                 ["arithmetic.csv", "arithmetic.md", "octave_ratios.png", "metrics.json"],
                 claim="Output sizes, parameter and MAC counts of seed 001's conv catalogue follow the "
                       "closed-form formulas; OctConv costs 1 - 1.5a + 0.75a^2 of the MACs and 1 - 0.75a "
                       "of the activation memory of a vanilla conv.")
    return metrics
