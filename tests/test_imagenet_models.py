"""ImageNet-layout models (models/zoo/imagenet_*.py): forward/backward smoke at 64x64, counts at 224x224
against the published tables (PAPERS.md 1.4, 2.3, 3.3, 5.3 via experiments/paper_tables.yaml),
``profile`` on the involution and octave paths at ImageNet size, and the paper_tables probe."""
from __future__ import annotations

import csv

import pytest
import torch
import torch.nn as nn
import torchvision
import yaml

import models
from experiments import paper_tables
from models import create_model, list_models
from models.complexity import count_params, profile
from models.layers import BlurPool2d, Involution2d

IMAGENET = {n for n in list_models() if models._REGISTRY[n].__module__.startswith("models.zoo.imagenet_")}
SMOKE = {
    "resnet18": dict(downsample="blurpool", filt_size=3),
    "resnet50": dict(conv="c2sp", downsample="avgpool", act="relu6", width=0.25),
    "densenet121": dict(conv="c2sp"),
    "oct_resnet50": dict(alpha=0.25),
    "oct_resnet101": dict(alpha=0.5),
    "imagenet_rednet26": dict(kernel_size=3),
    "imagenet_rednet38": dict(kernel_size=3),
    "imagenet_rednet50": dict(kernel_size=3),
    "imagenet_rednet101": dict(kernel_size=3),
    "imagenet_rednet152": dict(kernel_size=3),
}
SPEC = yaml.safe_load(paper_tables.TABLE.read_text())


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_every_imagenet_model_has_a_smoke_test_and_cifar_names_survive():
    assert IMAGENET == set(SMOKE)
    assert {"rednet26", "rednet38"} <= set(list_models()) - IMAGENET


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_forward_backward_64px(name):
    torch.manual_seed(0)
    m = create_model(name, num_classes=7, **SMOKE[name]).train()
    y = m(torch.randn(2, 3, 64, 64))
    assert y.shape == (2, 7)
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def _rows(*labels):
    return [r for r in SPEC["rows"] if r["label"] in labels]


@pytest.mark.parametrize("row", _rows("ResNet-50 C3", "ResNet-50 C2sp", "ResNet-50 0.5x C3", "RedNet-26", "DenseNet-121 C3"),
                         ids=lambda r: r["label"])
def test_counts_match_published_to_printed_precision(row):
    p = profile(create_model(row["model"], **row["kwargs"]), (3, 224, 224))
    if "params" in row:
        assert abs(p["params"] / 1e6 - float(row["params"])) <= paper_tables.half_unit(row["params"]), p["params"]
    if "macs" in row and not row.get("rednet"):
        scale = paper_tables.UNITS[row["macs_unit"]]
        assert abs(p["macs"] / scale - float(row["macs"])) <= paper_tables.half_unit(row["macs"]), p["macs"]


@pytest.mark.parametrize("name,ref", [("resnet18", "resnet18"), ("resnet50", "resnet50")])
def test_blurpool_adds_no_parameters_and_c3_strided_is_torchvision(name, ref):
    tv = getattr(torchvision.models, ref)()
    ours = create_model(name)
    assert count_params(ours) == count_params(tv)
    if name == "resnet18":  # (ResNet-50's MACs: the paper_tables probe, 4.089 G for oct_resnet50 alpha=0)
        assert profile(ours, (3, 224, 224))["macs"] == profile(tv, (3, 224, 224))["macs"]
    blur = create_model(name, downsample="blurpool", filt_size=4)
    assert count_params(blur) == count_params(tv)
    assert sum(isinstance(m, BlurPool2d) for m in blur.modules()) == 7  # stem + 3 strided blocks x (main, shortcut)


def test_profile_counts_involution_aggregation_at_imagenet_size():
    """RedNet-26 at 224: every Involution2d costs its kernel-generating convs plus C*K*K per output pixel."""
    m = create_model("imagenet_rednet26")
    per = profile(m, (3, 224, 224))["per_module"]
    shapes = {}
    hooks = [mod.register_forward_hook(lambda mod, i, o, n=n: shapes.__setitem__(n, (i[0].shape, o.shape)))
             for n, mod in m.named_modules() if isinstance(mod, Involution2d)]
    m.eval()
    with torch.no_grad():
        m(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    assert len(shapes) == 9  # stem + 1+2+4+1 bottlenecks
    for n, (xs, ys) in shapes.items():
        inv = m.get_submodule(n)
        c, (ho, wo) = xs[1], ys[-2:]
        mid = c // inv.reduction_ratio
        gen = ho * wo * (c * mid + mid * inv.kernel_size ** 2 * inv.groups)
        assert per[n] == gen + c * inv.kernel_size ** 2 * ho * wo, n
    assert paper_tables.aggregation_macs(m) == sum(xs[1] * m.get_submodule(n).kernel_size ** 2 * ys[-2] * ys[-1]
                                                   for n, (xs, ys) in shapes.items())


def test_profile_counts_octave_paths_at_imagenet_size():
    """Oct-ResNet-50, alpha = 0.5: a stride-1 3x3 octave conv of layer2 (28x28, 128 ch) costs 1 - 1.5a + 0.75a^2
    of the vanilla conv (h2h + l2h at 28x28 / 14x14, h2l + l2l at 14x14), and the net the README's 2.367 G."""
    p = profile(create_model("oct_resnet50", alpha=0.5), (3, 224, 224))
    name = "layers.4.conv2"  # layer2, second block (3 blocks in layer1)
    assert p["per_module"][name] == 64 * 64 * 9 * (28 * 28 + 14 * 14 + 14 * 14 + 14 * 14)
    assert p["per_module"][name] / (128 * 128 * 9 * 28 * 28) == pytest.approx(1 - 1.5 * 0.5 + 0.75 * 0.25, abs=1e-12)
    pub = _rows("Oct-ResNet-50 alpha=0.5")[0]["macs"]  # README, in G
    assert abs(p["macs"] / 1e9 - float(pub)) <= paper_tables.half_unit(pub)


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="conv"):
        create_model("resnet50", conv="c5")
    with pytest.raises(ValueError, match="depth 50"):
        create_model("resnet18", downsample="avgpool")
    with pytest.raises(ValueError, match="alpha"):
        create_model("oct_resnet50", alpha=1.0)
    with pytest.raises(TypeError):
        create_model("imagenet_rednet26", width=0.5)


class _Logger:
    def log_table(self, key, path):
        pass

    def log_image(self, key, path):
        pass


def test_half_unit_is_the_printed_precision():
    assert paper_tables.half_unit("25.5") == pytest.approx(0.05)
    assert paper_tables.half_unit("4089") == pytest.approx(0.5)
    assert paper_tables.half_unit("2.367") == pytest.approx(0.0005)
    assert paper_tables.half_unit("7.80") == pytest.approx(0.005)


def test_paper_tables_probe_flags_a_wrong_number(tmp_path):
    """The probe's comparison can fail: a published figure 0.1 M off is a mismatch without a note."""
    rows = [dict(r) for r in _rows("ResNet-50 C3", "ResNet-18 BlurPool f=4")]
    rows.append({**rows[0], "label": "ResNet-50 C3 (wrong)", "params": "25.4"})
    table = tmp_path / "table.yaml"
    table.write_text(yaml.safe_dump({"rows": rows, "rednet_note": "n/a"}))
    out = tmp_path / "out"
    out.mkdir()
    m = paper_tables.run(str(out), _Logger(), table=str(table))
    with open(out / "paper_tables.csv") as f:
        got = {(r["label"], r["quantity"]): r["verdict"] for r in csv.DictReader(f)}
    assert got[("ResNet-50 C3", "params")] == "match" and got[("ResNet-50 C3", "macs")] == "match"
    assert got[("ResNet-18 BlurPool f=4", "params")] == "match"
    assert got[("ResNet-50 C3 (wrong)", "params")] == "mismatch (unexplained)"
    assert m["n_rows"] == 5 and m["n_match"] == 4 and m["n_unexplained"] == 1
    assert (out / "paper_tables.md").exists() and (out / "paper_tables.png").exists()


def test_mmcv_convention_counts_bias_bn_relu_pool_but_not_the_aggregation():
    """``mmcv_macs`` (mmcv's get_model_complexity_info): conv MACs + bias, BN 2/element, ReLU and pooling 1/element."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=True), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
    px = 8 * 8
    expected = 3 * 8 * 9 * px + 8 * px + 2 * 8 * px + 8 * px + 8 * px
    assert paper_tables.mmcv_macs(net, (3, 8, 8)) == expected
    inv = Involution2d(32, kernel_size=7)
    gen = 32 * 8 + 2 * 8 + 8 + 8 * 49 * 2 + 49 * 2  # conv1, BN, ReLU, conv2 + bias per pixel; G = 2
    assert paper_tables.mmcv_macs(inv, (32, 8, 8)) == gen * px  # the aggregation is invisible to it
    assert paper_tables.aggregation_macs(inv, (32, 8, 8)) == 32 * 49 * px


class _TinyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.stem(x)), 1))


def test_mmcls_get_flops_runs_backbone_and_neck_not_the_head():
    """mmcls tools/get_flops.py counts ``extract_feat`` (backbone + GAP neck): the classifier's MACs are left out."""
    net = _TinyClassifier()
    px = 8 * 8
    assert paper_tables.mmcls_get_flops(net, (3, 8, 8)) == 3 * 8 * 9 * px + 8 * px  # conv + GAP (input elements)
    assert paper_tables.mmcv_macs(net, (3, 8, 8)) > paper_tables.mmcls_get_flops(net, (3, 8, 8))  # the head runs
    with pytest.raises(ValueError, match="fc"):
        paper_tables.extract_feat(nn.Sequential(nn.Linear(3, 3), nn.ReLU()))


def test_rednet_stem_kernel_size_only_changes_the_stem_involution():
    a, b = create_model("imagenet_rednet26"), create_model("imagenet_rednet26", stem_kernel_size=7)
    assert count_params(b) - count_params(a) == (49 - 9) * 2 * (8 + 1)  # conv2: 8 -> K*K*G outputs, + bias


def test_rednet152_readme_params_need_the_7x7_stem_involution():
    """README 33.99 M: the cls code's 3x3 stem gives 33,984,582 (outside 33.985..33.995), the 7x7 stem 33,985,302."""
    tol = paper_tables.half_unit("33.99")
    assert abs(count_params(create_model("imagenet_rednet152", stem_kernel_size=7)) / 1e6 - 33.99) <= tol
    assert abs(count_params(create_model("imagenet_rednet152")) / 1e6 - 33.99) > tol


def test_truncated_cuts_to_the_printed_digits():
    assert paper_tables.truncated(6.791016, "6.7") == "6.7"
    assert paper_tables.truncated(2143.739904, "2143") == "2143"
    assert paper_tables.truncated(7.978856, "8.0") == "7.9"  # rounding would print 8.0
    assert paper_tables.truncated(4.74, "4.74") == "4.74"


def _run_probe(tmp_path, rows):
    table = tmp_path / "table.yaml"
    table.write_text(yaml.safe_dump({"rows": rows, "rednet_note": SPEC["rednet_note"]}))
    out = tmp_path / "out"
    out.mkdir()
    m = paper_tables.run(str(out), _Logger(), table=str(table))
    with open(out / "paper_tables.csv") as f:
        return m, {(r["label"], r["quantity"]): r for r in csv.DictReader(f)}


def test_rednet_readme_figures_match_under_the_stated_build_and_counter(tmp_path):
    """RedNet-26 README 9.23 M / 1.73 G: the 7x7-stem build, FLOPs = mmcls get_flops + involution aggregation.
    Our own count (profile) and the cls code's 3x3 stem under the same counter both miss 1.73 G."""
    m, got = _run_probe(tmp_path, _rows("RedNet-26"))
    params, macs = got[("RedNet-26", "params")], got[("RedNet-26", "macs")]
    assert params["verdict"] == "match (convention: README build, 7x7 stem involution)"
    assert macs["verdict"].startswith("match (convention: README build, 7x7 stem involution; mmcls get_flops")
    assert macs["counter"] == "mmcls_plus_aggregation"
    assert abs(float(macs["ours"]) - 1.73) <= 0.005
    assert abs(float(macs["profile_macs"]) - 1.73) > 0.005 and macs["cls_code_match"] == "0"
    assert float(macs["mmcls"]) < float(macs["ours"])  # the aggregation is added on top of mmcv's count
    assert m["n_convention"] == 2 and m["n_unexplained"] == 0 and m["n_rednet_stem7_match"] == 2


def test_truncated_rows_are_explained_only_when_truncation_gives_the_printed_number(tmp_path):
    """ResNet-50 0.5x C2: 5.352 M prints as 5.3 only truncated; a row claiming truncation for 5.2 stays unexplained."""
    row = _rows("ResNet-50 0.5x C2")[0]
    wrong = {**row, "label": "ResNet-50 0.5x C2 (wrong)", "params": "5.2"}
    m, got = _run_probe(tmp_path, [row, wrong])
    assert got[("ResNet-50 0.5x C2", "params")]["verdict"] == "mismatch (explained: printed truncated, not rounded)"
    assert got[("ResNet-50 0.5x C2", "params")]["truncated"] == "5.3"
    assert got[("ResNet-50 0.5x C2", "macs")]["verdict"] == "match"
    assert got[("ResNet-50 0.5x C2 (wrong)", "params")]["verdict"] == "mismatch (unexplained)"
    assert m["n_explained"] == 1 and m["n_unexplained"] == 1
