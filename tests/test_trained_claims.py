"""Trained claims: the consistency metric, and tiny end-to-end sweeps + report on synthetic data."""
from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from engine.inference import Batches
from engine.logger import NullLogger
from experiments.report import build_reports
from experiments.rules import CHANCE_MARGIN
from experiments.runs import collect
import experiments.trained_shift as trained_shift
from experiments.trained_shift import consistency, diagonal_stability, shift
from tests.helpers import ROOT, even_state, run_cli

TINY = ["data=synthetic", "data.image_size=16", "data.train_size=512", "data.test_size=128", "data.val_size=128",
        "trainer.epochs=1", "model.width=0.25", "logger=none", "trainer.checkpoint=false",
        "trainer.channels_last=false"]  # torch 2.14.1 CPU fp32 crashes on NHWC 1x1/2 convs with < 8 input channels


class GlobalPool(nn.Module):
    """Shift-invariant under circular shifts: circular conv + global average pool."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")

    def forward(self, x):
        return self.conv(x).mean((2, 3))


class Positional(nn.Module):
    """Position dependent: a linear layer on the flattened image."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 16 * 16, 4)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (256, 3, 16, 16), dtype=torch.uint8, generator=g)


def test_shift_is_roll_or_zero_filled_translation():
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    one = torch.tensor([1])
    assert torch.equal(shift(x, one, one, "circular"), torch.roll(x, (1, 1), (2, 3)))
    t = shift(x, one, -one, "translate")
    assert torch.equal(t[0, 0, 1:, :3], x[0, 0, :3, 1:]) and t[0, 0, 0].abs().sum() == 0 and t[0, 0, :, 3].abs().sum() == 0
    with pytest.raises(ValueError, match="shift mode"):
        shift(x, one, one, "reflect")


def test_consistency_is_100_for_a_shift_invariant_model_and_lower_for_a_positional_one():
    torch.manual_seed(0)
    x = _data()
    prep = Batches((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"), False)
    inv, pos = GlobalPool(), Positional()
    assert consistency(inv, x, prep, "fp32", max_shift=4, passes=3, mode="circular") == pytest.approx(100.0)
    assert consistency(pos, x, prep, "fp32", max_shift=4, passes=3, mode="circular") < 90.0
    curve = diagonal_stability(inv, x, torch.zeros(len(x), dtype=torch.long), prep, "fp32", diag_max=4)
    assert max(curve) - min(curve) < 1e-5  # invariant model: flat stability curve


def test_the_shift_evaluator_infers_in_batches_of_trainer_eval_batch_size_and_they_change_no_metric(
        tmp_path, monkeypatch):
    torch.manual_seed(0)
    x, y = _data(), torch.randint(0, 4, (256,))
    prep = Batches((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"), False)
    model, sizes, predict = Positional().eval(), [], trained_shift.predict

    def spy(model, x_u8, prep, precision, batch_size):
        sizes.append(batch_size)
        return predict(model, x_u8, prep, precision, batch_size)

    monkeypatch.setattr(trained_shift, "predict", spy)
    run = {bs: trained_shift.evaluate_shift(model, prep, "fp32", x, y, tmp_path, NullLogger(), passes=2, diag_max=2,
                                            eval_batch_size=bs) for bs in (7, 256)}
    assert set(sizes) == {7, 256} and len(sizes) == 2 * (2 * 2 * 2 + 3)  # 2 modes x 2 passes x 2 views + 3 shifts
    assert run[7] == pytest.approx(run[256], abs=1e-6)
    assert run[7]["consistency_circular"] < 100  # a position-dependent model: the metric is not trivially 100


def _sweep(tmp_path, *overrides: str) -> Path:
    """A tiny multirun whose run records go to ``tmp_path/records`` (returned)."""
    records = tmp_path / "records"
    run_cli(*overrides, f"hydra.sweep.dir={tmp_path / 'sweeps' / overrides[0].split('=')[-1]}", multirun=True,
            env={"CONVLAB_RECORDS": str(records)})
    return records


@pytest.mark.slow
def test_even_kernels_sweep_and_report(tmp_path):
    records = _sweep(tmp_path, "experiment=even_kernels", *TINY, "model.name=resnet20", "model.conv=c2,c2sp",
                     "seed=0,1")
    ok, failed = collect([records])
    assert len(ok) == 4 and not failed
    sections = build_reports(ok, tmp_path / "results")
    out = tmp_path / "results" / "even_kernels" / "default"
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert {r["conv"] for r in rows} == {"c2", "c2sp"} and all(r["n"] == "2" for r in rows)
    assert rows[0]["params"] == rows[1]["params"]  # symmetric padding adds no parameters
    verdicts = {r["claim"]: r for r in csv.DictReader(open(out / "verdicts.csv"))}
    c2sp = verdicts["resnet20: C2sp beats C2 at equal params and MACs"]
    assert c2sp["n_a"] == c2sp["n_b"] == "2"
    if c2sp["verdict"].startswith("no verdict: a net at chance"):
        assert min(r["test_acc"] for r in ok) <= 10 + CHANCE_MARGIN
    else:
        lo, hi, diff = float(c2sp["ci_low"]), float(c2sp["ci_high"]), float(c2sp["diff"])
        assert lo <= diff <= hi
        assert c2sp["verdict"] == ("reproduced" if lo > 0 else "not reproduced" if hi < 0 else "inconclusive")
    assert (out / "error_vs_params.png").stat().st_size > 1000 and "even_kernels" in sections

    # RESULTS.md from these runs + the committed probe results: every claim has a row and a verdict
    from experiments.grid import progress_md
    from experiments.results_md import render, update_readme

    for probe in ("even_drift", "even_erosion", "dilation_degeneration", "conv_arithmetic", "paper_tables"):
        shutil.copytree(ROOT / "results" / probe, tmp_path / "results" / probe)
    text = render(tmp_path / "results", sections, progress=progress_md("standard", ok))
    table, grid, first = (text.index(s) for s in ("| claim | document |", "## The standard grid", "## even_drift"))
    assert table < grid < first  # the grid's progress follows the verdict table
    assert "experiment=even_kernels model.name=resnet56 model.conv=c2sp | 0/5 |" in text  # default-profile runs do not count
    rows = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in text.splitlines()
            if line.startswith("| ") and line.count("|") == 4 and "claim" not in line}
    assert {"even_drift", "even_erosion", "trained_drift", "trained_erosion", "even_kernels", "conv_arithmetic", "octave", "blurpool",
            "rednet", "dilation_degeneration", "paper_tables"} <= set(rows)
    assert rows["even_drift"] == rows["dilation_degeneration"] == "reproduced"
    assert rows["paper_tables"] != "not run"
    tallied = sum(int(n) for n, _ in (part.split(" ", 1) for part in rows["even_kernels"].split("default: ", 1)[1].split(", ")
                                      if part[0].isdigit()))
    assert rows["even_kernels"].startswith("standard: not run yet; default: ") and tallied == sum(
        v["verdict"] in ("reproduced", "not reproduced", "inconclusive") for v in verdicts.values())
    assert rows["blurpool"] == rows["trained_drift"] == rows["trained_erosion"] == "not run"
    assert "results/even_kernels/default/error_vs_params.png" in text
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\nrest\n")
    update_readme(readme, text)
    assert "old" not in readme.read_text() and "| even_kernels | 000 |" in readme.read_text()


@pytest.mark.slow
def test_blurpool_sweep_reports_consistency(tmp_path):
    records = _sweep(tmp_path, "experiment=blurpool", *TINY, "model.filt_size=1,3", "data.augment=false", "seed=0",
                     "evaluators.shift.passes=1")
    ok, _ = collect([records])
    assert len(ok) == 2 and all(0 <= r["consistency_circular"] <= 100 for r in ok)
    assert all(len(r["artifacts"]["diagonal_stability.csv"]) > 1 for r in ok)  # the curve travels in the record
    build_reports(ok, tmp_path / "results")
    out = tmp_path / "results" / "blurpool" / "default"
    assert (out / "consistency_vs_filter.png").exists() and (out / "diagonal.png").exists()
    assert any("f=3" in r["claim"] for r in csv.DictReader(open(out / "verdicts.csv")))


@pytest.mark.slow
def test_trained_drift_probe_on_a_checkpoint(tmp_path):
    """Finds the even_kernels checkpoints under any sweep dir (not only reproduce.sh's), or fails in one line."""
    sweep = tmp_path / "multirun" / "even_kernels" / "2026-01-01_00-00-00"
    env = {"CONVLAB_RECORDS": str(tmp_path / "records")}  # this test's run and probe records
    run_cli("experiment=smoke", "experiment_name=even_kernels", "logger=none", "model.conv=c2", "data.image_size=16",
            run_dir=sweep / "0")
    run_cli("experiment=smoke", "logger=none", "model.conv=c3", "data.image_size=16", run_dir=sweep / "1")  # a smoke run
    (tmp_path / "multirun" / "grid-standard").symlink_to(sweep)  # the same nets, where reproduce.sh looks
    out = tmp_path / "probe"
    run_cli("experiment=trained_drift", "logger=none", f"probe.checkpoints={tmp_path / 'multirun'}",
            "probe.images=64", run_dir=out, env=env)
    rows = list(csv.DictReader(open(out / "trained_drift.csv")))
    assert [int(r["size"]) for r in rows] == [16, 8, 4] and {r["conv"] for r in rows} == {"c2"}  # found twice, read once
    assert len(list((tmp_path / "records").rglob("*.trained_drift.json"))) == 1  # its probe record, via paths
    glob_override = re.search(r'"(probe\.checkpoints=[^"]+)"', (ROOT / "scripts" / "reproduce.sh").read_text())[1]
    run_cli("experiment=trained_drift", "logger=none", glob_override.replace("'multirun/", f"'{tmp_path}/multirun/"),
            "probe.images=64", run_dir=tmp_path / "as_reproduce_sh", env=env)  # reproduce.sh's glob, quoted as it passes it
    strip = lambda rs: [{k: v for k, v in r.items() if k != "run"} for r in rs]  # noqa: E731
    assert strip(csv.DictReader(open(tmp_path / "as_reproduce_sh" / "trained_drift.csv"))) == strip(rows)
    assert all(abs(float(r["dy"])) < int(r["size"]) / 2 for r in rows)
    assert (out / "trained_drift.png").exists()
    bad = run_cli("experiment=trained_drift", "logger=none", f"probe.checkpoints={sweep}",
                  "probe.model=resnet56", run_dir=tmp_path / "bad", check=False, env=env)
    assert bad.returncode == 2 and "probe.model='resnet56'" in bad.stderr.strip().splitlines()[0]
    empty = run_cli("experiment=trained_drift", "logger=none", f"probe.checkpoints={tmp_path / 'nothing'}",
                    "probe.records=null", run_dir=tmp_path / "empty", check=False, env=env)  # no checkpoints, no records
    lines = empty.stderr.strip().splitlines()
    assert empty.returncode == 2 and len(lines) == 1 and "probe.checkpoints=" in lines[0], empty.stderr


def test_probes_read_each_finished_net_once_and_one_recipe_only(tmp_path):
    """A run still training is skipped, the same config found twice counts once, and a second recipe is refused
    in one line naming the key: a probe's sample is one finished net per seed and kind."""
    from engine.checkpoint import save_atomic
    from engine.validate import ConfigError
    from experiments.trained_nets import select_runs

    ckpt = lambda *parts: tmp_path.joinpath(*parts, "checkpoints", "last.pt")  # noqa: E731
    for conv, seed in (("c2", 0), ("c2", 1), ("c3", 0)):
        save_atomic(even_state(conv, seed), ckpt("grid", f"{conv}-{seed}"))
    save_atomic(even_state("c2", 0), ckpt("probe_nets", "copy"))  # the same net, found twice
    running = even_state("c3", 1)
    running["epoch"] = 1  # one of two epochs done
    save_atomic(running, ckpt("running", "c3-1"))
    preempted = even_state("c2sp", 0)
    preempted["partial_epoch"] = {"step": 3}
    save_atomic(preempted, ckpt("running", "c2sp-0"))
    runs, names = select_runs(str(tmp_path), "even_kernels", None, "standard")
    assert names == ["resnet20"]
    assert sorted((s["config"]["model"]["conv"], s["config"]["seed"]) for _, s in runs) == [("c2", 0), ("c2", 1), ("c3", 0)]
    other = even_state("c3", 2)
    other["config"]["optim"]["lr"] = 0.4
    save_atomic(other, ckpt("tuned", "c3-2"))
    with pytest.raises(ConfigError, match=r"mixes recipes: .* differs from .* in optim\.lr \(a probe compares only "
                                          r"seed and model\.conv\)"):
        select_runs(str(tmp_path), "even_kernels", None, "standard")
    runs, _ = select_runs(str(tmp_path / "tuned"), "even_kernels", None, "standard")
    assert len(runs) == 1
    with pytest.raises(ConfigError, match=r"no finished checkpoints/last.pt .*2 checkpoint\(s\) found, 2 of them unfinished"):
        select_runs(str(tmp_path / "running"), "even_kernels", None, "standard")


@pytest.mark.slow
def test_rednet_sweep_reports_cost_and_accuracy_verdicts_separately(tmp_path):
    for exp, extra in (("rednet", ["model.kernel_size=3"]), ("rednet_baseline", [])):
        extra += ["model.width=1.0"]  # involution groups need multiples of 32 channels
        records = _sweep(tmp_path, f"experiment={exp}", *TINY, *extra, "seed=0,1")
    ok, failed = collect([records])
    assert len(ok) == 4 and not failed and all(r["step_img_s"] > 0 and r["saved_activation_mb"] > 0 for r in ok)
    build_reports(ok, tmp_path / "results")
    out = tmp_path / "results" / "rednet" / "default"
    verdicts = {r["metric"]: r for r in csv.DictReader(open(out / "verdicts.csv"))}
    assert set(verdicts) == {"test_acc", "step_img_s"}  # tested over seeds
    # involution replaces each 3x3 conv with fewer weights: counted, reported as measured facts, not verdicts
    facts = {r["metric"]: float(r["measured"]) for r in csv.DictReader(open(out / "facts.csv"))}
    assert facts["params"] < 1 and facts["macs"] < 1 and facts["saved activations"] > 0


@pytest.mark.slow
def test_octave_sweep_reports_mac_ratio_against_theory(tmp_path):
    records = _sweep(tmp_path, "experiment=octave", *TINY, "model.alpha=0.0,0.5", "seed=0,1")
    ok, failed = collect([records])
    assert len(ok) == 4 and not failed
    build_reports(ok, tmp_path / "results")
    out = tmp_path / "results" / "octave" / "default"
    assert {r["metric"] for r in csv.DictReader(open(out / "verdicts.csv"))} == {"step_img_s", "test_acc"}
    facts = {r["metric"]: r for r in csv.DictReader(open(out / "facts.csv"))}
    assert set(facts) == {"macs", "step time", "saved activations"}
    assert float(facts["macs"]["expected"]) == pytest.approx(0.4375) and 0.3 < float(facts["macs"]["measured"]) < 1


def test_measure_cost_leaves_the_model_unchanged():
    from experiments.trained_cost import measure_cost
    from models import create_model

    model = create_model("resnet20", num_classes=10, width=0.25).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prep = Batches((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"), False)
    out = measure_cost(model, prep, "fp32", _data(), batch_size=16, steps=2)
    assert out["step_img_s"] > 0 and out["saved_activation_mb"] > 0 and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
