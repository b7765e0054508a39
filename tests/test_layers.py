"""Layer library vs the reference code of the seed documents (000 SpConv2d, 002 Downsample,
003 involution), plus properties (centroid drift, shapes, errors)."""
from __future__ import annotations

import copy
import functools
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.layers import (
    CONV_KINDS,
    BlurPool2d,
    DepthwiseSeparableConv2d,
    Involution2d,
    MaxBlurPool2d,
    OctaveConv2d,
    OctaveConvBNAct,
    SamePadConv2d,
    SymPadConv2d,
    SymPadStemConv2d,
    binomial_filter,
    conv_bn_relu_blur,
    create_conv,
    create_downsample,
    get_same_padding,
    involution,
    involution_unfold,
    symmetric_pad_sizes,
)

# --------------------------------------------------------------------------------------------
# reference implementations, transcribed from the seed documents


class SpConv2d(nn.Module):  # seed 000
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, *args, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)

    def forward(self, x):
        n, c, h, w = x.size()
        assert c % 4 == 0
        x1 = x[:, : c // 4, :, :]
        x2 = x[:, c // 4 : c // 2, :, :]
        x3 = x[:, c // 2 : c // 4 * 3, :, :]
        x4 = x[:, c // 4 * 3 : c, :, :]
        x1 = nn.functional.pad(x1, (1, 0, 1, 0), mode="constant", value=0)  # left top
        x2 = nn.functional.pad(x2, (0, 1, 1, 0), mode="constant", value=0)  # right top
        x3 = nn.functional.pad(x3, (1, 0, 0, 1), mode="constant", value=0)  # left bottom
        x4 = nn.functional.pad(x4, (0, 1, 0, 1), mode="constant", value=0)  # right bottom
        x = torch.cat([x1, x2, x3, x4], dim=1)
        return self.conv(x)


def get_pad_layer(pad_type):  # seed 002
    if pad_type in ["refl", "reflect"]:
        return nn.ReflectionPad2d
    if pad_type in ["repl", "replicate"]:
        return nn.ReplicationPad2d
    if pad_type == "zero":
        return nn.ZeroPad2d
    raise ValueError(pad_type)


class Downsample(nn.Module):  # seed 002
    def __init__(self, pad_type="reflect", filt_size=3, stride=2, channels=None, pad_off=0):
        super().__init__()
        self.filt_size = filt_size
        self.pad_off = pad_off
        self.pad_sizes = [int(1.0 * (filt_size - 1) / 2), int(np.ceil(1.0 * (filt_size - 1) / 2)),
                          int(1.0 * (filt_size - 1) / 2), int(np.ceil(1.0 * (filt_size - 1) / 2))]
        self.pad_sizes = [pad_size + pad_off for pad_size in self.pad_sizes]
        self.stride = stride
        self.channels = channels
        a = {1: [1.0], 2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0],
             6: [1.0, 5.0, 10.0, 10.0, 5.0, 1.0], 7: [1.0, 6.0, 15.0, 20.0, 15.0, 6.0, 1.0]}[filt_size]
        a = np.array(a)
        filt = torch.Tensor(a[:, None] * a[None, :])
        filt = filt / torch.sum(filt)
        self.register_buffer("filt", filt[None, None, :, :].repeat((self.channels, 1, 1, 1)))
        self.pad = get_pad_layer(pad_type)(self.pad_sizes)

    def forward(self, inp):
        if self.filt_size == 1:
            if self.pad_off == 0:
                return inp[:, :, :: self.stride, :: self.stride]
            return self.pad(inp)[:, :, :: self.stride, :: self.stride]
        return F.conv2d(self.pad(inp), self.filt, stride=self.stride, groups=inp.shape[1])


class SeedInvolution(nn.Module):  # seed 003 (mmcv ConvModule -> conv/BN/ReLU), group_channels configurable
    def __init__(self, channels, kernel_size, stride, group_channels=16, reduction_ratio=4):
        super().__init__()
        self.kernel_size, self.stride, self.channels = kernel_size, stride, channels
        self.group_channels = group_channels
        self.groups = channels // group_channels
        self.conv1 = nn.Sequential(nn.Conv2d(channels, channels // reduction_ratio, 1, bias=False),
                                   nn.BatchNorm2d(channels // reduction_ratio), nn.ReLU(inplace=True))
        self.conv2 = nn.Conv2d(channels // reduction_ratio, kernel_size ** 2 * self.groups, 1)
        if stride > 1:
            self.avgpool = nn.AvgPool2d(stride, stride)
        self.unfold = nn.Unfold(kernel_size, 1, (kernel_size - 1) // 2, stride)

    def forward(self, x):
        weight = self.conv2(self.conv1(x if self.stride == 1 else self.avgpool(x)))
        b, c, h, w = weight.shape
        weight = weight.view(b, self.groups, self.kernel_size ** 2, h, w).unsqueeze(2)
        out = self.unfold(x).view(b, self.groups, self.group_channels, self.kernel_size ** 2, h, w)
        return (weight * out).sum(dim=3).view(b, self.channels, h, w)


def _copy_conv(dst: nn.Conv2d, src: nn.Conv2d) -> None:
    with torch.no_grad():
        dst.weight.copy_(src.weight)
        if dst.bias is not None:
            dst.bias.copy_(src.bias)


def _tol(dtype):
    return dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=3e-2, rtol=3e-2)


# --------------------------------------------------------------------------------------------
# SymPadConv2d / SamePadConv2d


@pytest.mark.parametrize("cin,cout,h,w,stride", [(4, 16, 14, 14, 1), (8, 8, 7, 9, 1), (12, 4, 10, 11, 2), (16, 32, 8, 8, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sympad_k2_equals_seed_spconv(cin, cout, h, w, stride, dtype):
    torch.manual_seed(0)
    ref = SpConv2d(cin, cout, 2, stride, 0)
    ours = SymPadConv2d(cin, cout, 2, stride=stride)
    _copy_conv(ours, ref.conv)
    x = torch.randn(2, cin, h, w)
    ref, ours, x = ref.to(dtype), ours.to(dtype), x.to(dtype)
    y_ref, y = ref(x), ours(x)
    assert y.shape == y_ref.shape and y.dtype == dtype
    torch.testing.assert_close(y, y_ref, **_tol(dtype))
    if stride == 1:
        assert y.shape[-2:] == (h, w)


def test_sympad_k2_grads_equal_seed():
    torch.manual_seed(1)
    ref, ours = SpConv2d(8, 8, 2, 1, 0), SymPadConv2d(8, 8, 2)
    _copy_conv(ours, ref.conv)
    x1 = torch.randn(2, 8, 9, 9, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    ref(x1).square().sum().backward()
    ours(x2).square().sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad)
    torch.testing.assert_close(ours.weight.grad, ref.conv.weight.grad)


def _tf_symmetric_padding(x: torch.Tensor) -> torch.Tensor:
    """boluoweifenda/CNN resnet50_c2sp.py::symmetric_padding (NCHW, C % 4 == 0), transcribed: the
    ``tf.pad`` patterns [top, bottom, left, right] per channel group, in the official group order."""
    patterns = [[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 1, 0], [1, 0, 0, 1]]
    groups = torch.split(x, x.shape[1] // 4, dim=1)
    return torch.cat([F.pad(g, (l, r, t, b)) for g, (t, b, l, r) in zip(groups, patterns)], dim=1)


def test_sympad_official_order_equals_tf_reference():
    """order="official" reproduces the official code; the default (seed 000's) order does not."""
    torch.manual_seed(3)
    x = torch.randn(2, 8, 6, 7)
    official, ours = SymPadConv2d(8, 12, 2, order="official"), SymPadConv2d(8, 12, 2)
    _copy_conv(ours, official)
    ref = F.conv2d(_tf_symmetric_padding(x), official.weight, official.bias)
    torch.testing.assert_close(official(x), ref)
    assert not torch.allclose(ours(x), ref, atol=1e-3)  # same weights, other corner order: not portable
    assert symmetric_pad_sizes(2, "official") == [(0, 1, 0, 1), (1, 0, 1, 0), (1, 0, 0, 1), (0, 1, 1, 0)]
    assert type(create_conv("c2sp", 8, 8, order="official")) is SymPadConv2d
    assert create_conv("c2sp", 8, 8, order="official").order == "official"
    with pytest.raises(ValueError, match="order"):
        SymPadConv2d(8, 8, 2, order="tf")


@pytest.mark.parametrize("order", ["seed000", "official"])
def test_sympad_stem_groups_outputs_by_corner(order):
    """SymPadStemConv2d: output group g = VALID conv of the input padded towards corner g."""
    torch.manual_seed(4)
    m = SymPadStemConv2d(3, 8, 2, bias=True, order=order)
    x = torch.randn(2, 3, 5, 6)
    corner = {"TL": (1, 0, 1, 0), "TR": (0, 1, 1, 0), "BL": (1, 0, 0, 1), "BR": (0, 1, 0, 1)}
    corners = {"seed000": ("TL", "TR", "BL", "BR"), "official": ("BR", "TL", "BL", "TR")}[order]
    ref = torch.cat([F.conv2d(F.pad(x, corner[c]), m.weight[2 * g:2 * g + 2], m.bias[2 * g:2 * g + 2])
                     for g, c in enumerate(corners)], dim=1)
    torch.testing.assert_close(m(x), ref)


def test_even_stride2_floors_odd_maps():
    """Documented difference: our AvgPool2d(2) floors odd maps (7 -> 3), TF 'SAME' pooling ceils (7 -> 4)."""
    x = torch.randn(1, 4, 7, 7)
    for kind in ("c2", "c2sp", "c4", "c4sp"):
        assert create_conv(kind, 4, 4, stride=2)(x).shape[-2:] == (3, 3)
    assert create_conv("c3", 4, 4, stride=2)(x).shape[-2:] == (4, 4)


@pytest.mark.parametrize("k", [4, 6])
def test_sympad_k4_k6_equal_per_group_padding(k):
    torch.manual_seed(0)
    pads = symmetric_pad_sizes(k)
    if k == 4:
        assert pads == [(2, 1, 2, 1), (1, 2, 2, 1), (2, 1, 1, 2), (1, 2, 1, 2)]
    # the four groups' offsets cancel: sum over groups of (l - r, t - b) == 0
    assert sum(l - r for l, r, _, _ in pads) == 0 and sum(t - b for _, _, t, b in pads) == 0
    m = SymPadConv2d(8, 6, k)
    x = torch.randn(2, 8, 11, 12)
    xs = [F.pad(g, p) for g, p in zip(x.chunk(4, dim=1), pads)]
    y_ref = F.conv2d(torch.cat(xs, 1), m.weight, m.bias)
    torch.testing.assert_close(m(x), y_ref)
    assert m(x).shape[-2:] == (11, 12)


def test_sympad_errors():
    with pytest.raises(ValueError, match="in_channels"):
        SymPadConv2d(6, 8, 2)
    for k in (1, 3, 5):
        with pytest.raises(ValueError, match="even"):
            SymPadConv2d(8, 8, k)


@pytest.mark.parametrize("k,s", [(2, 1), (3, 1), (4, 1), (5, 1), (2, 2), (3, 2), (4, 2), (4, 3)])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's reference pads a copy: expected
def test_samepad_tf_formula(k, s):
    torch.manual_seed(0)
    m = SamePadConv2d(3, 5, k, stride=s)
    for i in (7, 8, 9, 16):
        x = torch.randn(1, 3, i, i + 1)
        y = m(x)
        assert y.shape[-2:] == (math.ceil(i / s), math.ceil((i + 1) / s))
        ph, pw = get_same_padding(i, k, s), get_same_padding(i + 1, k, s)
        assert ph == max((math.ceil(i / s) - 1) * s + k - i, 0)
        y_ref = F.conv2d(F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)), m.weight, m.bias, s)
        torch.testing.assert_close(y, y_ref)
        if s == 1:  # torch's own 'same' (extra pixel on the right/bottom) agrees for stride 1
            torch.testing.assert_close(y, F.conv2d(x, m.weight, m.bias, padding="same"))


def _centroid(y: torch.Tensor) -> tuple[float, float]:
    m = y.double().sum(dim=(0, 1))
    h, w = m.shape
    ys, xs = torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64)
    tot = m.sum()
    return float((m.sum(1) * ys).sum() / tot), float((m.sum(0) * xs).sum() / tot)


def _blob(n=48, sigma=3.0):
    ys, xs = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")
    c = (n - 1) / 2
    g = torch.exp(-((ys - c) ** 2 + (xs - c) ** 2) / (2 * sigma ** 2))
    return g.expand(1, 4, n, n).contiguous(), c


@pytest.mark.parametrize("cls,expected_drift", [(SymPadConv2d, 0.0), (SamePadConv2d, -8.0)])
def test_even_kernel_centroid_drift(cls, expected_drift):
    """16 averaging 2x2 layers: symmetric padding keeps the blob centred, 'same' padding drifts
    n/2 = 8 px towards the top-left (PAPERS.md 1.2)."""
    x, c = _blob()
    layers = []
    for _ in range(16):
        m = cls(4, 4, 2, bias=True)
        nn.init.constant_(m.weight, 1.0 / (4 * 4))
        nn.init.zeros_(m.bias)
        layers.append(m)
    with torch.no_grad():
        y = nn.Sequential(*layers)(x)
    assert y.shape == x.shape
    cy, cx = _centroid(y)
    assert abs(cy - c - expected_drift) < 0.5 and abs(cx - c - expected_drift) < 0.5, (cy, cx, c)


# --------------------------------------------------------------------------------------------
# BlurPool


@pytest.mark.parametrize("filt_size", range(1, 8))
@pytest.mark.parametrize("pad_type", ["reflect", "replicate", "zero"])
def test_blurpool_equals_seed_downsample(filt_size, pad_type):
    torch.manual_seed(filt_size)
    for (h, w), stride in itertools.product([(8, 8), (9, 12), (16, 15)], [1, 2, 3]):
        x = torch.randn(2, 5, h, w)
        ref = Downsample(pad_type=pad_type, filt_size=filt_size, stride=stride, channels=5)
        ours = BlurPool2d(5, filt_size=filt_size, stride=stride, pad_type=pad_type)
        torch.testing.assert_close(ours(x), ref(x))
        torch.testing.assert_close(ours.to(torch.bfloat16)(x.bfloat16()), ref.to(torch.bfloat16)(x.bfloat16()),
                                   **_tol(torch.bfloat16))


def test_blurpool_taps_and_buffer():
    for f in range(1, 8):
        filt = binomial_filter(f)
        assert filt.shape == (f, f) and abs(float(filt.sum()) - 1) < 1e-6
    torch.testing.assert_close(binomial_filter(4)[0] / binomial_filter(4)[0, 0], torch.tensor([1.0, 3, 3, 1]))
    m = BlurPool2d(8)
    assert "filt" not in m.state_dict() and len(list(m.parameters())) == 0
    m.load_state_dict({})


@pytest.mark.parametrize("h", [7, 8, 15, 16, 31, 32, 33])
@pytest.mark.parametrize("filt_size", range(1, 8))
def test_blurpool_shape_table(h, filt_size):
    y = BlurPool2d(2, filt_size=filt_size)(torch.zeros(1, 2, h, h + 1))
    assert y.shape[-2:] == (math.ceil(h / 2), math.ceil((h + 1) / 2))
    y = MaxBlurPool2d(2, filt_size=filt_size)(torch.zeros(1, 2, h, h))
    assert y.shape[-2:] == (math.ceil((h - 1) / 2),) * 2


def test_blurpool_32_to_16_and_maxblur_equals_seed():
    x = torch.randn(2, 6, 32, 32)
    assert BlurPool2d(6, filt_size=4)(x).shape[-2:] == (16, 16)
    ref = nn.Sequential(nn.MaxPool2d(2, 1), Downsample(filt_size=4, channels=6))
    torch.testing.assert_close(MaxBlurPool2d(6)(x), ref(x))
    m = conv_bn_relu_blur(6, 8, 3, stride=2)
    assert m(x).shape == (2, 8, 16, 16)
    assert m[0].stride == (1, 1) and isinstance(m[2], nn.ReLU) and isinstance(m[3], BlurPool2d)


def test_blurpool_errors():
    for f in (0, 8):
        with pytest.raises(ValueError, match="filt_size"):
            BlurPool2d(4, filt_size=f)
    with pytest.raises(ValueError, match="pad_type"):
        BlurPool2d(4, pad_type="circular")


# --------------------------------------------------------------------------------------------
# involution

INV_CASES = [  # B, C, G, H, W, K, stride
    (2, 16, 1, 8, 8, 3, 1),
    (2, 32, 2, 9, 7, 7, 1),
    (1, 8, 4, 10, 10, 5, 2),
    (2, 16, 2, 11, 9, 3, 2),
    (1, 4, 1, 12, 12, 7, 3),
]


def _inv_inputs(b, c, g, h, w, k, s, dtype=torch.float32):
    ho, wo = (h + 2 * ((k - 1) // 2) - k) // s + 1, (w + 2 * ((k - 1) // 2) - k) // s + 1
    x = torch.randn(b, c, h, w, dtype=dtype)
    ker = torch.randn(b, g, k * k, ho, wo, dtype=dtype)
    return x, ker


@pytest.mark.parametrize("case", INV_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_involution_matches_unfold_forward_backward(case, dtype):
    torch.manual_seed(0)
    b, c, g, h, w, k, s = case
    x, ker = _inv_inputs(*case)
    go = torch.randn(b, c, *ker.shape[-2:])
    xr, kr = x.double().requires_grad_(), ker.double().requires_grad_()
    y_ref = involution_unfold(xr, kr, k, s)
    y_ref.backward(go.double())
    xo, ko = x.to(dtype).requires_grad_(), ker.to(dtype).requires_grad_()
    y = involution(xo, ko, k, s)
    assert y.dtype == dtype and y.shape == y_ref.shape
    y.backward(go.to(dtype))
    scale = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else dict(atol=0.15, rtol=0.05)
    torch.testing.assert_close(y.double(), y_ref.detach(), **scale)
    torch.testing.assert_close(xo.grad.double(), xr.grad, **scale)
    torch.testing.assert_close(ko.grad.double(), kr.grad, **scale)
    assert xo.grad.dtype == dtype and ko.grad.dtype == dtype


@pytest.mark.parametrize("case", [(1, 4, 2, 5, 6, 3, 1), (1, 2, 1, 6, 5, 3, 2), (2, 2, 2, 4, 4, 5, 1)])
def test_involution_gradcheck(case):
    torch.manual_seed(0)
    x, ker = _inv_inputs(*case, dtype=torch.float64)
    k, s = case[5], case[6]
    assert torch.autograd.gradcheck(lambda a, b: involution(a, b, k, s),
                                    (x.requires_grad_(), ker.requires_grad_()))


@pytest.mark.parametrize("k, s", [(3, 1), (7, 1), (3, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_involution_ops_fake_kernels_match_the_real_ops(k, s, channels_last):
    """torch.library.opcheck: schema, autograd registration and fake (meta) kernels against the real ops. The fake
    kernels decide the strides torch.compile assumes: RedNet trains channels_last, so x arrives channels_last and
    the kernel as a strided view of a channels_last conv output."""
    torch.manual_seed(0)
    x, ker = _inv_inputs(2, 32, 2, 8, 8, k, s)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        ker = ker.permute(0, 3, 4, 1, 2).contiguous().permute(0, 3, 4, 1, 2)  # (B, Ho, Wo, G, K*K) storage
        assert not ker.is_contiguous()
    grad = torch.randn(2, 32, *ker.shape[-2:])
    torch.library.opcheck(torch.ops.convdesign.involution.default,
                          (x.requires_grad_(), ker.requires_grad_(), k, s))
    torch.library.opcheck(torch.ops.convdesign.involution_backward.default, (grad, x.detach(), ker.detach(), k, s))


@pytest.mark.parametrize("stride", [1, 2])
def test_involution_whole_batch_pass_equals_the_cpu_batch_chunks(stride, monkeypatch):
    """CPU splits the tap loop into ~1 MiB batch chunks, CUDA runs it over the whole batch: same numbers, bit for bit."""
    import importlib

    inv_mod = importlib.import_module("models.layers.involution")  # the module (the package exports the function)
    torch.manual_seed(0)
    x, ker = _inv_inputs(3, 64, 4, 40, 40, 7, stride)
    lay = inv_mod._Layout(40, 40, 7, stride)
    per_sample = 64 * lay.rows * lay.row * 4  # bytes of one padded fp32 sample, as the op computes them
    assert inv_mod._chunk(3, per_sample, x.device) < 3  # these samples are split into chunks on CPU
    assert inv_mod._chunk(3, per_sample, torch.device("cuda")) == 3
    go = torch.randn(3, 64, *ker.shape[-2:])

    def run():
        xa, ka = x.clone().requires_grad_(), ker.clone().requires_grad_()
        y = involution(xa, ka, 7, stride)
        y.backward(go)
        return y, xa.grad, ka.grad

    chunked = run()
    monkeypatch.setattr(inv_mod, "_chunk", lambda b, per_sample_bytes, device: b)
    whole = run()
    for a, b in zip(chunked, whole):
        assert torch.equal(a, b)


def test_involution_saves_only_inputs():
    """The default op keeps x and kernel for backward, not a K*K-times larger unfold buffer."""
    x, ker = _inv_inputs(2, 16, 1, 12, 12, 7, 1)
    x.requires_grad_(), ker.requires_grad_()
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        involution(x, ker, 7, 1).sum().backward()
    assert sum(saved) <= x.numel() + ker.numel()
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        involution_unfold(x, ker, 7, 1)
    assert sum(saved) >= 49 * x.numel()  # the reference does store the unfold buffer


@pytest.mark.parametrize("c,gc,k,s", [(16, 16, 7, 1), (32, 16, 7, 2), (32, 8, 3, 1), (16, 4, 5, 2)])
def test_involution2d_equals_seed(c, gc, k, s):
    torch.manual_seed(0)
    ref = SeedInvolution(c, k, s, group_channels=gc)
    ours = Involution2d(c, kernel_size=k, stride=s, group_channels=gc)
    ours.load_state_dict({k_.replace("conv1.0", "conv1.conv").replace("conv1.1", "conv1.bn"): v
                          for k_, v in ref.state_dict().items()})
    x1 = torch.randn(2, c, 12, 12, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    y_ref, y = ref(x1), ours(x2)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    y_ref.square().sum().backward()
    y.square().sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.conv2.weight.grad, ref.conv2.weight.grad, atol=1e-3, rtol=1e-4)
    assert y.shape == (2, c, math.ceil(12 / s), math.ceil(12 / s))


def test_involution2d_autocast_bf16():
    torch.manual_seed(0)
    m = Involution2d(32, 7, group_channels=16)
    x = torch.randn(2, 32, 8, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
        y_bf = m(x.bfloat16())
    assert y.dtype == torch.float32 and y_bf.dtype == torch.bfloat16  # output dtype follows x
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(m.conv2.weight.grad).all()
    torch.testing.assert_close(y, m(x), atol=0.1, rtol=0.05)


def test_involution2d_errors_and_params():
    with pytest.raises(ValueError, match="group_channels"):
        Involution2d(24, group_channels=16)
    with pytest.raises(ValueError, match="group_channels"):
        Involution2d(8, group_channels=16)
    m = Involution2d(64, 7, group_channels=16, reduction_ratio=4)
    # C*C/r + (C/r)*K*K*G  + BN (2*C/r) + conv2 bias (K*K*G)
    assert sum(p.numel() for p in m.parameters()) == 64 * 16 + 16 * 49 * 4 + 2 * 16 + 49 * 4


# --------------------------------------------------------------------------------------------
# octave


def _octave_reference(w: torch.Tensor, x_h, x_l, out_high: int, stride: int, p: int):
    """PAPERS.md 5.2 from one full weight ``w`` [C_out, C_in, k, k] on explicit tensors.

    Rows ``:out_high`` of ``w`` make Y_H, columns ``:C_in_high`` read X_H (so the four blocks of
    ``w`` are h2h, l2h, h2l, l2l). Y_H = X_H*W_hh + up(X_L*W_lh), Y_L = X_L*W_ll + pool(X_H)*W_hl;
    stride 2 pools X_H first and X_L before l2l, and l2h is then not upsampled. Pooling is a 2x2
    mean of strided slices and ``up`` a repeat, not the layer's own avg_pool2d / interpolate calls.
    """
    pool = lambda t: (t[..., 0::2, 0::2] + t[..., 1::2, 0::2] + t[..., 0::2, 1::2] + t[..., 1::2, 1::2]) / 4  # noqa: E731
    up = lambda t: t.repeat_interleave(2, -2).repeat_interleave(2, -1)  # noqa: E731
    ih = x_h.shape[1]
    w_hh, w_lh, w_hl, w_ll = w[:out_high, :ih], w[:out_high, ih:], w[out_high:, :ih], w[out_high:, ih:]
    if stride == 2:
        x_h = pool(x_h)
    y_h = F.conv2d(x_h, w_hh, padding=p)
    y_l = F.conv2d(pool(x_h), w_hl, padding=p) if w.shape[0] > out_high else None
    if x_l is not None:
        l2h = F.conv2d(x_l, w_lh, padding=p)
        y_h = y_h + (l2h if stride == 2 else up(l2h))
        if y_l is not None:
            y_l = y_l + F.conv2d(pool(x_l) if stride == 2 else x_l, w_ll, padding=p)
    return y_h, y_l


def _load_octave_weight(m: OctaveConv2d, w: torch.Tensor) -> None:
    oh, ih = m.out_high, m.in_high
    blocks = {"conv_h2h": w[:oh, :ih], "conv_l2h": w[:oh, ih:], "conv_h2l": w[oh:, :ih], "conv_l2l": w[oh:, ih:]}
    with torch.no_grad():
        for name, blk in blocks.items():
            conv = getattr(m, name)
            assert (conv is None) == (blk.numel() == 0), name
            if conv is not None:
                conv.weight.copy_(blk)


@pytest.mark.parametrize("a_in,a_out", [(0.0, 0.5), (0.5, 0.5), (0.25, 0.0), (0.125, 0.75), (0.0, 0.0)])
@pytest.mark.parametrize("stride", [1, 2])
def test_octave_shapes_and_reference(a_in, a_out, stride):
    torch.manual_seed(0)
    cin, cout, h = 16, 32, 16
    m = OctaveConv2d(cin, cout, 3, a_in, a_out, stride=stride, padding=1)
    lo = int(a_in * cin)
    x_h = torch.randn(2, cin - lo, h, h)
    x_l = torch.randn(2, lo, h // 2, h // 2) if lo else None
    y_h, y_l = m((x_h, x_l) if lo else x_h)
    assert y_h.shape == (2, cout - int(a_out * cout), h // stride, h // stride)
    if a_out == 0:
        assert y_l is None
    else:
        assert y_l.shape == (2, int(a_out * cout), h // stride // 2, h // stride // 2)
    w = torch.randn(cout, cin, 3, 3)
    _load_octave_weight(m, w)
    y_h, y_l = m((x_h, x_l) if lo else x_h)
    r_h, r_l = _octave_reference(w, x_h, x_l, m.out_high, stride, 1)
    torch.testing.assert_close(y_h, r_h)
    if r_l is not None:
        torch.testing.assert_close(y_l, r_l)


def test_octave_alpha0_is_plain_conv_and_errors():
    m = OctaveConv2d(8, 8, 3, 0.0, 0.0, padding=1)
    x = torch.randn(1, 8, 8, 8)
    torch.testing.assert_close(m(x)[0], F.conv2d(x, m.conv_h2h.weight, padding=1))
    for a in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            OctaveConv2d(8, 8, 3, a, 0.5)
        with pytest.raises(ValueError, match="alpha"):
            OctaveConv2d(8, 8, 3, 0.5, a)
    blk = OctaveConvBNAct(16, 16, 3, 0.5, 0.5)
    y_h, y_l = blk((torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4)))
    assert y_h.shape == (2, 8, 8, 8) and y_l.shape == (2, 8, 4, 4) and (y_h >= 0).all()


# --------------------------------------------------------------------------------------------
# separable + factories


def test_depthwise_separable():
    torch.manual_seed(0)
    m = DepthwiseSeparableConv2d(8, 12, 3, stride=2, dilation=2)
    x = torch.randn(2, 8, 16, 16)
    ref = F.conv2d(F.conv2d(x, m.depthwise.weight, stride=2, padding=2, dilation=2, groups=8), m.pointwise.weight)
    torch.testing.assert_close(m(x), ref)
    assert sum(p.numel() for p in m.parameters()) == 8 * 9 + 8 * 12
    assert DepthwiseSeparableConv2d(8, 12, bn_act=True)(x).shape == (2, 12, 16, 16)


@pytest.mark.parametrize("kind", CONV_KINDS)
@pytest.mark.parametrize("stride", [1, 2])
def test_create_conv_kinds(kind, stride):
    m = create_conv(kind, 16, 16, stride=stride)
    y = m(torch.randn(2, 16, 16, 16))
    assert y.shape == (2, 16, 16 // stride, 16 // stride)
    if kind in ("c2", "c4", "c2sp", "c4sp"):
        conv_cls = SymPadConv2d if kind in ("c2sp", "c4sp") else SamePadConv2d
        if stride == 2:
            assert isinstance(m, nn.Sequential) and isinstance(m[0], nn.AvgPool2d) and isinstance(m[1], conv_cls)
            assert m[1].stride == (1, 1)
        else:
            assert isinstance(m, conv_cls)
    elif kind in ("c3", "c5"):
        assert type(m) is nn.Conv2d and m.stride == (stride, stride) and m.bias is None
    else:
        assert isinstance(m, Involution2d) and m.kernel_size == 7 and m.stride == stride


def test_create_conv_errors_and_downsample():
    with pytest.raises(ValueError, match="c2sp"):
        create_conv("c7", 8, 8)
    with pytest.raises(ValueError, match="in_channels"):
        create_conv("involution", 16, 32)
    # c2sp on a non-multiple-of-4 input (the image stem): groups over the outputs, stride 1 only
    assert type(create_conv("c2sp", 6, 8)) is SymPadStemConv2d and type(create_conv("c2sp", 8, 8)) is SymPadConv2d
    with pytest.raises(ValueError, match="stride"):
        create_conv("c2sp", 3, 8, stride=2)
    with pytest.raises(ValueError, match="out_channels"):
        create_conv("c4sp", 3, 10)
    with pytest.raises(TypeError):
        create_conv("c2", 8, 8, order="official")  # the corner order is a symmetric-padding option only
    with pytest.raises(TypeError):
        create_conv("c3", 8, 8, kernel_size=5)
    m = create_conv("involution", 32, 32, kernel_size=3, group_channels=8, reduction_ratio=2)
    assert m.kernel_size == 3 and m.groups == 4 and m.conv1.conv.out_channels == 16
    assert isinstance(create_downsample("strided", 8), nn.Identity)
    assert isinstance(create_downsample("blurpool", 8, stride=1), nn.Identity)  # create_aa-like: no-op when off
    assert isinstance(create_downsample("blurpool", 8, filt_size=3), BlurPool2d)
    assert isinstance(create_downsample("maxblur", 8), MaxBlurPool2d)
    with pytest.raises(ValueError, match="blurpool"):
        create_downsample("avg", 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_involution_cuda_fp32_and_autocast(exact_fp32_cuda):
    torch.manual_seed(0)
    x, ker = _inv_inputs(2, 32, 2, 16, 16, 7, 1)
    x, ker = x.cuda().requires_grad_(), ker.cuda().requires_grad_()
    y = involution(x, ker, 7)
    torch.testing.assert_close(y, involution_unfold(x, ker, 7), atol=1e-4, rtol=1e-4)
    m = Involution2d(32, 7).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = m(x)
    assert y.dtype == torch.float32
    y.sum().backward()
    assert torch.isfinite(m.conv2.weight.grad).all()


@pytest.mark.parametrize("k", [2, 4])
def test_symmetric_pad_gradcheck(k):
    from models.layers import symmetric_pad

    x = torch.randn(1, 8, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: symmetric_pad(t, k), (x,))
    ref = torch.cat([F.pad(g, p) for g, p in zip(x.chunk(4, 1), symmetric_pad_sizes(k))], 1)
    assert torch.equal(symmetric_pad(x, k), ref)


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("order", ["seed000", "official"])
def test_symmetric_pad_accelerator_path_equals_the_cpu_path_and_the_reference(k, order):
    """The pad-and-concatenate forward (taken on GPUs) and the fused one (CPU) give the per-group F.pad
    reference's numbers and gradients (plain autograd through the reference), bit for bit."""
    from models.layers.padding import SYMPAD_ORDERS, symmetric_pad

    assert order in SYMPAD_ORDERS
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 6)
    go = torch.randn(2, 8, 5 + k - 1, 6 + k - 1)
    xa, xb, xr = (x.clone().requires_grad_() for _ in range(3))
    ya, yb = symmetric_pad(xa, k, order, fused=True), symmetric_pad(xb, k, order, fused=False)
    ref = torch.cat([F.pad(g, p) for g, p in zip(xr.chunk(4, 1), symmetric_pad_sizes(k, order))], 1)
    assert torch.equal(ya, ref) and torch.equal(yb, ref)
    for y in (ya, yb, ref):
        y.backward(go)
    assert torch.equal(xa.grad, xr.grad) and torch.equal(xb.grad, xr.grad)


@pytest.mark.parametrize("path", ["cpu", "accelerator"])
def test_symmetric_pad_keeps_a_channels_last_input_channels_last(path):
    """Nets train channels_last: a padded map in NCHW would cost the next conv a layout conversion (C2sp's step
    was 1.3x C2's on the CPU). Same values and gradients as the contiguous input."""
    from models.layers.padding import symmetric_pad

    pad = functools.partial(symmetric_pad, fused=path == "cpu")
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 6)
    go = torch.randn(2, 8, 6, 7)
    xc, xl = x.clone().requires_grad_(), x.contiguous(memory_format=torch.channels_last).requires_grad_()
    yc, yl = pad(xc, 2, "seed000"), pad(xl, 2, "seed000")
    assert yl.is_contiguous(memory_format=torch.channels_last) and not yl.is_contiguous()
    assert yc.is_contiguous()
    assert torch.equal(yc, yl)
    yc.backward(go)
    yl.backward(go)
    assert torch.equal(xc.grad, xl.grad)


_CUDA_LAYERS = {
    **{kind: lambda kind=kind: create_conv(kind, 16, 16, stride=2) for kind in CONV_KINDS},
    "sympad_stem": lambda: create_conv("c2sp", 3, 16),
    "blurpool": lambda: create_downsample("blurpool", 16, filt_size=4),
    "maxblur": lambda: create_downsample("maxblur", 16, filt_size=3),
    "octave": lambda: OctaveConv2d(16, 16, 3, 0.0, 0.5, stride=2, padding=1),
    "separable": lambda: DepthwiseSeparableConv2d(16, 24, 3, stride=2),
}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(_CUDA_LAYERS))
def test_layers_on_cuda_match_cpu(name, exact_fp32_cuda):
    """Every layer family runs forward and backward on CUDA with the CPU's results (fp32)."""
    torch.manual_seed(0)
    m = _CUDA_LAYERS[name]()
    x = torch.randn(2, 3 if name == "sympad_stem" else 16, 16, 16, requires_grad=True)
    xc = x.detach().cuda().requires_grad_()
    y, yc = m(x), copy.deepcopy(m).cuda()(xc)
    y, yc = (y[0], yc[0]) if isinstance(y, tuple) else (y, yc)
    torch.testing.assert_close(yc.cpu(), y, atol=1e-4, rtol=1e-4)
    y.square().sum().backward()
    yc.square().sum().backward()
    torch.testing.assert_close(xc.grad.cpu(), x.grad, atol=1e-3, rtol=1e-3)
