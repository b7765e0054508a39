"""profile() vs analytic parameter / MAC counts (seed 001: n*oc*oh*ow*(ic/g)*kh*kw; PAPERS.md 3.2, 5.1)."""
from __future__ import annotations

import pytest
import torch.nn as nn
import torch.nn.functional as F

from models.arithmetic import conv_macs
from models.complexity import profile
from models.layers import (
    BlurPool2d,
    DepthwiseSeparableConv2d,
    Involution2d,
    MaxBlurPool2d,
    OctaveConv2d,
    SamePadConv2d,
    SymPadConv2d,
    create_conv,
)


def _params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("cin,cout,k,s,p,d,g", [(16, 32, 3, 1, 1, 1, 1), (16, 32, 3, 2, 1, 1, 4), (16, 16, 3, 1, 2, 2, 16),
                                                 (8, 8, 5, 1, 4, 2, 1), (3, 16, 7, 2, 3, 1, 1)])
def test_conv2d_grouped_dilated(cin, cout, k, s, p, d, g):
    m = nn.Conv2d(cin, cout, k, s, p, d, groups=g, bias=True)
    r = profile(m, (2, cin, 20, 20))
    o = (20 + 2 * p - d * (k - 1) - 1) // s + 1
    assert r["macs"] == conv_macs(2, cin, cout, o, o, k, groups=g)
    assert r["params"] == _params(m) == cin // g * cout * k * k + cout
    assert r["activations"] == 2 * cout * o * o and r["flops_2x_macs"] == 2 * r["macs"]
    assert "flops" not in r  # the papers' "FLOPs" are MACs; no key may suggest otherwise


def test_depthwise_separable():
    m = DepthwiseSeparableConv2d(16, 32, 3)
    r = profile(m, (16, 32, 32))
    assert r["macs"] == 32 * 32 * (16 * 9 + 16 * 32)
    assert r["params"] == 16 * 9 + 16 * 32
    assert r["per_module"]["depthwise"] == 32 * 32 * 16 * 9


def test_conv_transpose_and_conv3d():
    m = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
    r = profile(m, (1, 8, 10, 10))
    # every input pixel multiplies its (ic/g) channel with k*k*oc/g... : n*ic*ih*iw*(oc/g)*k*k
    assert r["macs"] == 1 * 8 * 10 * 10 * (4 // 2) * 9
    m3 = nn.Conv3d(4, 8, 3, padding=1)
    r3 = profile(m3, (1, 4, 6, 8, 8))
    assert r3["macs"] == 8 * 6 * 8 * 8 * 4 * 27


@pytest.mark.parametrize("cls,k", [(SymPadConv2d, 2), (SymPadConv2d, 4), (SamePadConv2d, 2), (SamePadConv2d, 3), (SamePadConv2d, 4)])
def test_even_kernel_convs(cls, k):
    m = cls(16, 32, k, bias=False)
    r = profile(m, (16, 32, 32))
    assert r["macs"] == conv_macs(1, 16, 32, 32, 32, k)
    assert r["params"] == 16 * 32 * k * k


def test_c2_vs_c3_costs():
    """C2sp uses 4/9 of C3's params and MACs (no extra cost from padding, PAPERS.md E3)."""
    r2, r3 = (profile(create_conv(k, 16, 16), (16, 32, 32)) for k in ("c2sp", "c3"))
    assert r2["macs"] * 9 == r3["macs"] * 4 and r2["params"] * 9 == r3["params"] * 4
    r = profile(create_conv("c2sp", 16, 16, stride=2), (16, 32, 32))  # AvgPool then stride-1 conv at 16x16
    assert r["macs"] == 16 * 16 * 16 * 16 * 4


@pytest.mark.parametrize("f", [1, 3, 4, 7])
def test_blurpool_counted_as_depthwise_conv(f):
    r = profile(BlurPool2d(8, filt_size=f), (8, 32, 32))
    assert r["macs"] == (0 if f == 1 else 8 * 16 * 16 * f * f) and r["params"] == 0
    r = profile(MaxBlurPool2d(8, filt_size=f), (8, 32, 32))
    assert r["macs"] == (0 if f == 1 else 8 * 16 * 16 * f * f)


@pytest.mark.parametrize("c,k,s,gc,r", [(64, 7, 1, 16, 4), (32, 7, 2, 16, 4), (16, 3, 1, 16, 4), (64, 5, 2, 8, 2)])
def test_involution2d(c, k, s, gc, r):
    m = Involution2d(c, k, s, gc, r)
    res = profile(m, (2, c, 16, 16))
    g, mid, o = c // gc, c // r, 16 // s
    assert res["macs"] == 2 * o * o * (c * mid + mid * k * k * g + c * k * k)
    assert res["params"] == c * mid + mid * k * k * g + 2 * mid + k * k * g
    assert res["activations"] == 2 * c * o * o  # composite layer: its output only


def test_involution_vs_conv_example():
    """PAPERS.md 3.2: C=64, K=7 gives 4.4 k params and 7.3 k MAC/px, vs 36.9 k for a 3x3 conv."""
    r = profile(Involution2d(64, 7), (64, 8, 8))
    assert round(r["macs"] / 64 / 100) == 73
    assert round(r["params"] / 100) == 44  # incl. BN and the conv2 bias


class _Oct(nn.Module):
    def __init__(self, a, c=64):
        super().__init__()
        self.oct = OctaveConv2d(c, c, 3, a, a, padding=1)

    def forward(self, x):
        hi = self.oct.in_high
        return self.oct((x[:, :hi], F.avg_pool2d(x[:, hi:], 2) if self.oct.in_low else None))


def test_octave_ratios():
    base = profile(_Oct(0.0), (64, 32, 32))
    assert base["macs"] == conv_macs(1, 64, 64, 32, 32, 3)
    for a in (0.125, 0.25, 0.5, 0.75):
        r = profile(_Oct(a), (64, 32, 32))
        assert abs(r["macs"] / base["macs"] - (1 - 1.5 * a + 0.75 * a * a)) < 0.01
        assert abs(r["activations"] / base["activations"] - (1 - 0.75 * a)) < 0.01
        assert r["params"] == base["params"]  # OctConv re-partitions the same weights


def test_profile_restores_mode_and_accepts_batch():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    m.train()
    r1, r4 = profile(m, (3, 8, 8)), profile(m, (4, 3, 8, 8))
    assert m.training and r4["macs"] == 4 * r1["macs"]
    assert r1["macs"] == 8 * 8 * 8 * 27 + 8 * 8 * 8 * 10
    assert r1["params"] == 3 * 8 * 9 + 8 + 16 + 8 * 8 * 8 * 10 + 10
