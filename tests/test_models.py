"""Model zoo: shapes and gradients for every registered model, parameter / MAC counts against the
papers (PAPERS.md 1.4, 3.3, 5.1), and the error messages of bad configurations."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from models import create_model, list_models
from models.complexity import count_params, profile
from models.layers import BlurPool2d, MaxBlurPool2d, symmetric_pad_sizes
from models.layers import SymPadStemConv2d

# Small but structurally complete variants, so the whole sweep stays fast on 2 CPU cores.
SMALL_KWARGS = {
    "resnet": dict(depth=8, width=0.5),
    "resnet20": dict(width=0.5),
    "resnet32": dict(width=0.25),
    "resnet38": dict(width=0.25),
    "resnet44": dict(width=0.25),
    "resnet56": dict(width=0.25),
    "resnet110": dict(width=0.25),
    "plain": dict(depth=6, width=8),
    "bottleneck26": dict(width=0.5),
    "bottleneck38": dict(width=0.25),
    "rednet26": dict(width=0.5, group_channels=8, kernel_size=3),
    "rednet38": dict(width=0.5, group_channels=8),
    "oct_resnet20": dict(width=0.5, alpha=0.25),
    "oct_resnet26": dict(width=0.5),
    "vgg13_bn": dict(width=0.125, downsample="maxblur"),
    "mobilenet_cifar": dict(width=0.25),
}



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Batch-2 CIFAR tensors are too small for intra-op threads; on a busy 2-core box the thread
    hand-offs cost 10-50x the compute, so this module runs single-threaded."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


PAPER_RESNET20_M = {"c2": 0.124, "c3": 0.272, "c4": 0.480, "c5": 0.747}  # PAPERS.md 1.4 [comp]


def _fwd_bwd(model: nn.Module, shape, num_classes: int) -> None:
    model.train()
    x = torch.randn(*shape)
    y = model(x)
    assert y.shape == (shape[0], num_classes)
    y.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_every_model_has_small_kwargs():
    # the ImageNet layouts (models/zoo/imagenet_*.py) have their own smoke tests: tests/test_imagenet_models.py
    from models import _REGISTRY

    imagenet = {n for n in list_models() if _REGISTRY[n].__module__.startswith("models.zoo.imagenet_")}
    assert set(list_models()) - imagenet == set(SMALL_KWARGS)


@pytest.mark.parametrize("name", sorted(SMALL_KWARGS))
def test_forward_backward_cifar_and_fmnist(name):
    _fwd_bwd(create_model(name, num_classes=10, **SMALL_KWARGS[name]), (2, 3, 32, 32), 10)
    _fwd_bwd(create_model(name, num_classes=7, in_channels=1, **SMALL_KWARGS[name]), (2, 1, 28, 28), 7)


@pytest.mark.parametrize("name", sorted(SMALL_KWARGS))
def test_eval_mode_is_finite(name):
    """Eval mode (BN running stats) stays finite at init and after one SGD step. For RedNet at full
    width this guards zero_init_residual: involution is quadratic in its input, and without it an
    eval forward at init overflows to NaN."""
    torch.manual_seed(0)
    m = create_model(name, **({} if name.startswith("rednet") else SMALL_KWARGS[name]))
    x = torch.randn(8, 3, 32, 32)
    m.eval()
    with torch.no_grad():
        assert torch.isfinite(m(x)).all()
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    nn.functional.cross_entropy(m(x), torch.arange(8) % 10).backward()
    opt.step()
    m.eval()
    with torch.no_grad():
        assert torch.isfinite(m(x)).all()


@pytest.mark.parametrize("conv", ["c2", "c2sp", "c4", "c4sp", "c5"])
@pytest.mark.parametrize("downsample", ["strided", "blurpool"])
def test_resnet_conv_kinds_both_inputs(conv, downsample):
    for shape in [(2, 3, 32, 32), (2, 1, 28, 28)]:
        m = create_model("resnet", depth=8, conv=conv, downsample=downsample, width=0.5, in_channels=shape[1])
        _fwd_bwd(m, shape, 10)


@pytest.mark.parametrize("conv", ["c2", "c2sp", "c3", "c4sp"])
def test_plain_variants(conv):
    m = create_model("plain", depth=7, width=8, conv=conv, downsample="blurpool", in_channels=1)
    _fwd_bwd(m, (2, 1, 28, 28), 10)
    n_conv = sum(isinstance(mod, nn.Conv2d) for mod in m.modules())
    assert n_conv == 7


@pytest.mark.parametrize("conv", sorted(PAPER_RESNET20_M))
def test_resnet20_params_match_paper(conv):
    n = count_params(create_model("resnet20", conv=conv))
    assert abs(n / 1e6 / PAPER_RESNET20_M[conv] - 1) < 0.015, n


def test_resnet56_params_match_paper():
    for conv, ref in {"c2": 0.385, "c3": 0.856, "c4": 1.515, "c5": 2.363}.items():
        n = count_params(create_model("resnet56", conv=conv))
        assert abs(n / 1e6 / ref - 1) < 0.015, (conv, n)


@pytest.mark.parametrize("even", ["c2", "c4"])
def test_symmetric_padding_is_free(even):
    """Claim E3: sp kinds have exactly the params and MACs of the plain even kernel (stem included)."""
    for in_ch in (3, 1):
        a = profile(create_model("resnet20", conv=even, in_channels=in_ch), (in_ch, 32, 32))
        b = profile(create_model("resnet20", conv=even + "sp", in_channels=in_ch), (in_ch, 32, 32))
        assert a["params"] == b["params"] and a["macs"] == b["macs"]


def test_sympad_stem_is_centred():
    """With all-ones weights the four output groups shift by half a pixel towards the four corners;
    their centroids average back to the input's (no net drift), while each group alone is shifted."""
    torch.manual_seed(0)
    conv = SymPadStemConv2d(3, 8, 2)
    nn.init.ones_(conv.weight)
    x = torch.zeros(1, 3, 9, 9)
    x[..., 4, 4] = 1.0
    with torch.no_grad():
        y = conv(x)
    assert y.shape == (1, 8, 9, 9)
    ii, jj = torch.meshgrid(torch.arange(9.0), torch.arange(9.0), indexing="ij")
    m = y[0].sum(0)
    assert torch.allclose(torch.stack([(m * ii).sum() / m.sum(), (m * jj).sum() / m.sum()]), torch.tensor([4.0, 4.0]))
    g0 = y[0, 0]
    assert abs(float((g0 * ii).sum() / g0.sum()) - 4.0) == pytest.approx(0.5)
    assert len(symmetric_pad_sizes(2)) == 4


def test_blurpool_resnet_has_no_strided_conv():
    m = create_model("resnet20", downsample="blurpool", filt_size=3)
    blurs = [mod for mod in m.modules() if isinstance(mod, BlurPool2d)]
    assert len(blurs) == 4  # main path + shortcut of the two downsampling blocks
    assert all(b.filt_size == 3 for b in blurs)
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            assert mod.stride == (1, 1), mod
    assert count_params(m) == count_params(create_model("resnet20"))  # BlurPool adds no parameters


def test_vgg_maxblur_and_alias():
    for ds in ("maxblur", "blurpool"):
        m = create_model("vgg13_bn", downsample=ds, width=0.125)
        assert sum(isinstance(mod, MaxBlurPool2d) for mod in m.modules()) == 5
    m = create_model("vgg13_bn", width=0.125)
    assert sum(isinstance(mod, nn.MaxPool2d) for mod in m.modules()) == 5


def test_rednet_is_cheaper_than_resnet():
    """Claim I3 direction at CIFAR scale: RedNet-26 has fewer params and MACs than bottleneck ResNet-26."""
    base = profile(create_model("bottleneck26"), (3, 32, 32))
    for k in (3, 7):
        red = profile(create_model("rednet26", kernel_size=k), (3, 32, 32))
        assert red["params"] < base["params"] and red["macs"] < base["macs"]


def test_octresnet_alpha0_is_resnet20():
    a = profile(create_model("resnet20"), (3, 32, 32))
    b = profile(create_model("oct_resnet20", alpha=0.0), (3, 32, 32))
    assert a["params"] == b["params"] and a["macs"] == b["macs"]


def test_octresnet_mac_ratio():
    """Claim O3: MACs ~ 1 - 1.5a + 0.75a^2 of the alpha=0 net (82 % at a=0.125); same params."""
    a = 0.125
    theory = 1 - 1.5 * a + 0.75 * a * a
    p0 = profile(create_model("oct_resnet20", alpha=0.0), (3, 32, 32))
    p1 = profile(create_model("oct_resnet20", alpha=a), (3, 32, 32))
    assert p0["params"] == p1["params"]
    assert abs(p1["macs"] / p0["macs"] - theory) < 0.02
    # Stride-1 blocks before the last (alpha -> alpha, int(a*C) exact at 16/32/64) follow the formula
    # exactly. Stride-2 blocks cost more: their l2h conv runs on X_L at the new high resolution.
    inner = [f"layers.{i}" for i in (0, 1, 2, 4, 5, 7)]
    r = sum(p1["per_module"][k] for k in inner) / sum(p0["per_module"][k] for k in inner)
    assert r == pytest.approx(theory, abs=1e-9)


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("resnet20", dict(conv="c7"), "conv kind"),
        ("resnet20", dict(conv="involution"), "conv kind"),
        ("plain", dict(conv="c6"), "conv kind"),
        ("resnet", dict(depth=21), "6n\\+2"),
        ("resnet", dict(depth=2), "6n\\+2"),
        ("resnet20", dict(downsample="maxblur"), "max-pooling"),
        ("resnet20", dict(downsample="avg"), "downsample"),
        ("resnet20", dict(conv="c2sp", width=0.1), "multiple of 4"),
        ("plain", dict(depth=2), "depth"),
        ("oct_resnet20", dict(alpha=1.0), "alpha"),
        ("oct_resnet20", dict(alpha=-0.1), "alpha"),
        ("rednet26", dict(group_channels=24), "group_channels=24"),
        ("rednet26", dict(kernel_size=4), "odd"),
        ("vgg13_bn", dict(downsample="avg"), "downsample"),
    ],
)
def test_bad_configs_raise_value_error(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model(name, **kwargs)


def test_unknown_model_and_kwarg():
    with pytest.raises(ValueError, match="resnet20") as e:
        create_model("resnet21")
    assert all(n in str(e.value) for n in list_models())
    with pytest.raises(TypeError):
        create_model("resnet20", alpha=0.5)


@pytest.mark.parametrize("name, kw", [("resnet20", dict(conv="c2sp", width=0.25)), ("resnet", dict(depth=8)),
                                      ("oct_resnet20", dict(width=0.25)), ("bottleneck26", dict(width=0.25))])
def test_models_expose_block_and_stage_outputs(name, kw):
    """forward_blocks / forward_stages give the outputs that hooks on the blocks see, in order."""
    torch.manual_seed(0)
    model = create_model(name, **kw).eval()
    x = torch.randn(2, 3, 32, 32)
    seen = []
    blocks = list(model.layers)
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(o[0] if isinstance(o, tuple) else o)) for b in blocks]
    with torch.no_grad():
        model(x)
        for h in hooks:
            h.remove()
        outs = model.forward_blocks(x)
    assert len(outs) == len(blocks) == len(seen)
    for a, b in zip(outs, seen):
        torch.testing.assert_close(a, b)
    if hasattr(model, "forward_stages"):
        with torch.no_grad():
            stages = model.forward_stages(x)
        assert [s.shape[-1] for s in stages] == [32, 16, 8]
        assert [s.shape[1] for s in stages] == [f["num_chs"] for f in model.feature_info]
        torch.testing.assert_close(stages[-1], outs[-1])
