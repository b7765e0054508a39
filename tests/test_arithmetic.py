"""Conv arithmetic (Dumoulin & Visin R1-R15, seed 001) vs the shapes torch actually produces."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn

from models.arithmetic import (
    conv_macs,
    conv_output_size,
    conv_params,
    conv_transpose_output_size,
    effective_kernel_size,
    output_padding_for,
    pool_output_size,
    receptive_field,
    transpose_equivalent,
)
from models import create_model
from models.layers import BlurPool2d, Involution2d, MaxBlurPool2d, OctaveConv2d, SamePadConv2d, SymPadConv2d, create_conv

GRID = [(i, k, s, p, d) for i, k, s, p, d in itertools.product([5, 6, 7, 10], [1, 2, 3, 4], [1, 2, 3], [0, 1, 2], [1, 2])
        if i + 2 * p >= effective_kernel_size(k, d)]


def test_conv_grid_vs_torch():
    for i, k, s, p, d in GRID:
        y = nn.functional.conv2d(torch.zeros(1, 1, i, i + 1), torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d)
        assert y.shape[-2:] == (conv_output_size(i, k, s, p, d), conv_output_size(i + 1, k, s, p, d)), (i, k, s, p, d)


def test_conv_transpose_grid_vs_torch_and_output_padding():
    for i, k, s, p, d in GRID:
        o = conv_output_size(i, k, s, p, d)
        a = output_padding_for(i, o, k, s, p, d)  # transpose of the conv i -> o gives back i
        assert 0 <= a < max(s, d)
        m = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=a, dilation=d)
        y = m(torch.zeros(1, 1, o, o))
        assert y.shape[-1] == i == conv_transpose_output_size(o, k, s, p, a, d), (i, k, s, p, d, a)
        for a2 in range(max(s, d)):  # every admissible output_padding
            if (o - 1) * s - 2 * p + d * (k - 1) + a2 + 1 < 1:
                continue
            y = nn.functional.conv_transpose2d(torch.zeros(1, 1, o, o), torch.zeros(1, 1, k, k), stride=s, padding=p,
                                               output_padding=a2, dilation=d)
            assert y.shape[-1] == conv_transpose_output_size(o, k, s, p, a2, d)


def test_output_padding_errors():
    with pytest.raises(ValueError, match="output_padding"):
        output_padding_for(20, 5, 3, 2, 1)  # max reachable is 10
    with pytest.raises(ValueError):
        conv_transpose_output_size(5, 3, 2, 1, output_padding=2)
    assert output_padding_for(10, 5, 3, 2, 1) == 1 and output_padding_for(9, 5, 3, 2, 1) == 0


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_grid_vs_torch(ceil_mode):
    for i, k, s, p in itertools.product([5, 6, 7, 10, 31, 32], [1, 2, 3, 4], [1, 2, 3], [0, 1, 2]):
        if p > k // 2:
            continue
        x = torch.zeros(1, 1, i, i)
        want = pool_output_size(i, k, s, p, ceil_mode=ceil_mode)
        assert nn.MaxPool2d(k, s, p, ceil_mode=ceil_mode)(x).shape[-1] == want, (i, k, s, p)
        assert nn.AvgPool2d(k, s, p, ceil_mode=ceil_mode)(x).shape[-1] == want, (i, k, s, p)
    for i, k, d in itertools.product([9, 10], [2, 3], [1, 2]):
        assert nn.MaxPool2d(k, 1, dilation=d)(torch.zeros(1, 1, i, i)).shape[-1] == pool_output_size(i, k, 1, d=d)
    assert pool_output_size(32, 2) == 16  # stride defaults to the kernel size


def test_guide_relationships_R1_to_R15():
    i, k = 5, 3
    assert conv_output_size(i, k) == (i - k) + 1 == 3  # R1
    assert conv_output_size(5, 4, p=2) == (5 - 4) + 2 * 2 + 1 == 6  # R2
    for kk in (1, 3, 5, 7):
        assert conv_output_size(9, kk, p=kk // 2) == 9  # R3 half/same
        assert conv_output_size(5, kk, p=kk - 1) == 5 + kk - 1  # R4 full
    assert conv_output_size(5, 3, s=2) == (5 - 3) // 2 + 1 == 2  # R5
    assert conv_output_size(6, 3, s=2, p=1) == (6 + 2 - 3) // 2 + 1 == 3  # R6
    assert pool_output_size(5, 3, 1) == (5 - 3) + 1 == 3  # R7
    ip = 2
    assert conv_transpose_output_size(ip, 4) == ip + 4 - 1 == 5  # R8
    assert conv_transpose_output_size(6, 4, p=2) == 6 + 3 - 4 == 5  # R9
    assert conv_transpose_output_size(5, 3, p=1) == 5  # R10 half padding
    assert conv_transpose_output_size(7, 3, p=2) == 7 - 2 == 5  # R11 full padding
    assert conv_transpose_output_size(2, 3, s=2) == 2 * (2 - 1) + 3 == 5  # R12 (i - k) % s == 0 with i=5
    assert conv_transpose_output_size(3, 3, s=2, p=1) == 2 * (3 - 1) + 3 - 2 == 5  # R13 (5+2-3) % 2 == 0
    # R14: i=6, k=3, s=2, p=1 -> i'=3, a=(6+2-3) % 2 = 1, o' = 2*(3-1) + 1 + 3 - 2 = 6
    te = transpose_equivalent(6, 3, 2, 1)
    assert te == {"k": 3, "stride": 1, "zeros_inserted": 1, "padding": 1, "a": 1, "i_prime": 3, "o_prime": 6}
    assert conv_transpose_output_size(3, 3, s=2, p=1, output_padding=te["a"]) == 6
    # R15 dilation
    assert effective_kernel_size(3, 2) == 5 and effective_kernel_size(3, 1) == 3 and effective_kernel_size(2, 3) == 4
    assert conv_output_size(7, 3, d=2) == (7 - 3 - 2 * 1) // 1 + 1 == 3


def test_transpose_equivalent_matches_torch():
    """Seed 001: insert s-1 zeros, pad k-p-1 (+a bottom/right), unit-stride conv with the flipped kernel."""
    torch.manual_seed(0)
    for i, k, s, p in [(6, 3, 2, 1), (7, 3, 2, 1), (5, 4, 3, 0), (9, 5, 2, 2)]:
        te = transpose_equivalent(i, k, s, p)
        x = torch.randn(1, 1, te["i_prime"], te["i_prime"])
        w = torch.randn(1, 1, k, k)
        y = nn.functional.conv_transpose2d(x, w, stride=s, padding=p, output_padding=te["a"])
        z = torch.zeros(1, 1, s * (te["i_prime"] - 1) + 1, s * (te["i_prime"] - 1) + 1)
        z[..., ::s, ::s] = x
        q = te["padding"]
        z = nn.functional.pad(z, (q, q + te["a"], q, q + te["a"]))
        y2 = nn.functional.conv2d(z, w.flip(-1, -2))
        assert y.shape[-1] == te["o_prime"] == i
        torch.testing.assert_close(y, y2)


def test_macs_and_params_formulas():
    m = nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=True)
    assert sum(p.numel() for p in m.parameters()) == conv_params(8, 16, 3, groups=4, bias=True)
    assert conv_macs(2, 8, 16, 10, 10, 3, groups=4) == 2 * 16 * 10 * 10 * 2 * 9


def test_receptive_field_lists():
    assert receptive_field([(3, 1)] * 2).size == 5
    assert receptive_field([(3, 1)] * 3).size == 7
    assert receptive_field([(3, 1, 2)]).size == 5
    rf = receptive_field([(3, 2), (3, 2), (3, 1)])
    assert rf.size == 1 + 2 + 2 * 2 + 2 * 4 == 15 and rf.jump == 4
    assert receptive_field([(2, 2), (3, 1, 2)]).size == 2 + 4 * 2


def test_receptive_field_modules():
    seq = lambda *m: nn.Sequential(*m)  # noqa: E731
    assert receptive_field(seq(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3)), (4, 16, 16)).size == 5
    assert receptive_field(seq(nn.Conv2d(4, 4, 3, dilation=2)), (4, 16, 16)).size == 5
    # poster: "2 -> 3 -> 5" and "4 -> 5"
    assert receptive_field(seq(SymPadConv2d(4, 4, 2)), (4, 16, 16)).size == 3
    assert receptive_field(seq(SymPadConv2d(4, 4, 2), SymPadConv2d(4, 4, 2)), (4, 16, 16)).size == 5
    assert receptive_field(seq(SymPadConv2d(4, 4, 4)), (4, 16, 16)).size == 5
    assert receptive_field(seq(SamePadConv2d(4, 4, 2), SamePadConv2d(4, 4, 2)), (4, 16, 16)).size == 3
    rf = receptive_field(seq(nn.Conv2d(4, 4, 3, padding=1), BlurPool2d(4, 4), MaxBlurPool2d(4), Involution2d(4, 3, 2, group_channels=4)),
                         (4, 32, 32))
    assert [l[1:] for l in rf.layers] == [(3, 1, 1), (4, 2, 1), (2, 1, 1), (4, 2, 1), (3, 2, 1)]
    assert rf.size == 1 + 2 + 3 + 1 * 2 + 3 * 2 + 2 * 4 and rf.jump == 8
    # even stride-2 kinds: AvgPool(2) then the stride-1 conv
    assert [l[1:] for l in receptive_field(create_conv("c2sp", 8, 8, 2), (8, 16, 16)).layers] == [(2, 2, 1), (3, 1, 1)]


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, 2, 1)
        self.conv2 = nn.Conv2d(8, 8, 3, 1, 1)
        self.shortcut = nn.Conv2d(4, 8, 1, 2)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x))) + self.shortcut(x)


class _Block2(_Block):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 8, 3, 2, 1)
        self.shortcut = nn.Conv2d(8, 8, 1, 2)


def test_receptive_field_residual_main_path():
    """Projection shortcuts (excluded by name) run in parallel; the main path is composed."""
    rf = receptive_field(nn.Sequential(_Block(), _Block2()), (4, 32, 32))
    assert [l[0] for l in rf.layers] == ["0.conv1", "0.conv2", "1.conv1", "1.conv2"]
    assert rf.jump == 4 and rf.size == 1 + 2 + 2 * 2 + 2 * 2 + 2 * 4


def test_receptive_field_composite_root():
    rf = receptive_field(Involution2d(16, 7, 2), (16, 32, 32))
    assert rf.layers == [("", 7, 2, 1)] and rf.size == 7 and rf.jump == 2


@pytest.mark.parametrize("fn, args, match", [
    ("conv_transpose_output_size", (1, 1, 1, 1), "p=1"),          # torch: output size -1 is too small
    ("conv_transpose_output_size", (0, 3), "i=0"),
    ("conv_transpose_output_size", (4, 3, 0), "s=0"),
    ("pool_output_size", (5, 2, 1, 2), "p=2"),                     # torch: pad at most half the kernel
    ("pool_output_size", (2, 5), "k=5"),
    ("pool_output_size", (4, 2, 0), "s=0"),
])
def test_arithmetic_helpers_refuse_what_torch_refuses(fn, args, match):
    """Inputs torch raises on give a ValueError naming the bad argument (not -1 or 8)."""
    import models.arithmetic as A

    with pytest.raises(ValueError, match=match):
        getattr(A, fn)(*args)


def _measured_support(model: nn.Module, size: int) -> int:
    """Rows of the input with a nonzero gradient of the centre unit of the last map (all taps > 0)."""
    from experiments.measured_rf import measured_receptive_field

    ry, rx, _, clipped = measured_receptive_field(model, size)
    assert not clipped and ry == rx
    return ry


class _Head(nn.Module):
    """An octave conv (high output) followed by a global pool, for the measurement."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv, self.pool = conv, nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.conv(x)[0])


@pytest.mark.parametrize("name, build, size, expected", [
    ("stride-2 alpha=0 octave conv", lambda: _Head(OctaveConv2d(4, 4, 3, 0.0, 0.0, stride=2, padding=1)), 16, 6),
    ("oct_resnet20 alpha=0", lambda: create_model("oct_resnet20", alpha=0.0, width=0.25), 160, 90),
    ("oct_resnet20 alpha=0.125", lambda: create_model("oct_resnet20", alpha=0.125, width=0.5), 256, 180),
    ("oct_resnet20 alpha=0.5", lambda: create_model("oct_resnet20", alpha=0.5, width=0.25), 256, 180),
])
def test_octave_receptive_field_equals_measured_support(name, build, size, expected):
    """receptive_field follows the octave paths (AvgPool before stride-2 convs, the low branch at
    twice the jump) and equals the measured gradient support (it was 3 and 81 before)."""
    model = build()
    assert _measured_support(model, size) == expected
    in_ch = 4 if name.startswith("stride") else 3
    assert receptive_field(model, (in_ch, size, size)).size == expected
