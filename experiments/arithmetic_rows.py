"""Row builders of the ``conv_arithmetic`` probe: one measured and one analytic value per row.

Sections ``output_size``, ``complexity``, ``octave`` and ``models`` (see ``experiments.conv_arithmetic.SETUP``);
the ``receptive_field`` section lives in ``experiments.measured_rf``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import create_model
from models.arithmetic import (
    conv_macs,
    conv_output_size,
    conv_params,
    conv_transpose_output_size,
    effective_kernel_size,
    output_padding_for,
)
from models.complexity import profile
from models.layers import SPATIAL_KINDS, DepthwiseSeparableConv2d, OctaveConv2d

COLUMNS = ["section", "name", "quantity", "measured", "analytic", "agree", "tol", "analytic_source"]
# ResNet-20 params (M) read from the poster's x-positions (PAPERS.md 1.4)
POSTER_RESNET20_PARAMS_M = {"c2": 0.124, "c3": 0.272, "c4": 0.480, "c5": 0.747}

class Rows:
    """The table: ``add`` one measured-vs-analytic row (``agree`` when within ``tol``)."""

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
def output_size_rows(R: Rows) -> None:
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
def complexity_rows(R: Rows) -> None:
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


def octave_rows(R: Rows, alphas, channels: int, size: int) -> list[dict]:
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

def model_rows(R: Rows) -> None:
    profs = {k: profile(create_model("resnet20", conv=k), (3, 32, 32)) for k in SPATIAL_KINDS}
    for k, v in POSTER_RESNET20_PARAMS_M.items():
        R.add("models", f"resnet20/{k}", "params (M)", profs[k]["params"] / 1e6, v,
              "poster x-position (PAPERS.md 1.4), 3 significant digits", tol=0.005, rel=True)
    for sp, base in (("c2sp", "c2"), ("c4sp", "c4")):
        for q in ("params", "macs"):
            R.add("models", f"resnet20/{sp} vs resnet20/{base}", q, profs[sp][q], profs[base][q],
                  f"E3: symmetric padding adds no {q}")


