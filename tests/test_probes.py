"""Training-free claim probes, end to end through the CLI (``python train.py experiment=<name>``).

The four probe runs are started in parallel once per module (one torch thread each) and every test
asserts on the CSV a probe wrote what its claim says:

* even_drift (Wu et al. E1): after n C2 layers the centroid has moved n/2 px up and left; C2sp stays put.
* even_erosion (E2): at layer 54, Q of C2 and C4 is below Q of C3 and C2sp.
* dilation_degeneration (DeepLabv3 Fig. 4, seed 004): no position keeps 9 valid weights once the
  rate reaches half the 65 map (33); every position has 1 once the rate reaches the map size (65);
  the dilated-vs-1x1 MAE is 0 exactly from rate 16 on a 16x16 map and positive below.
* conv_arithmetic (seed 001, OctConv O3): octave ratios within 0.01 of theory, every row agrees.
"""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT, even_state

SLOW = pytest.mark.slow  # the tests on probe_runs: every probe runs through train.py once per module (minutes)

PROBES = ("even_drift", "even_erosion", "dilation_degeneration", "conv_arithmetic", "paper_tables")


class _FakeLogger:
    def __init__(self) -> None:
        self.tables, self.images = {}, {}

    def log_table(self, key, path):
        self.tables[key] = path

    def log_image(self, key, path):
        self.images[key] = path


@pytest.fixture(scope="module")
def probe_runs(tmp_path_factory) -> dict[str, Path]:
    """Run every probe through the CLI (in parallel) into its own temp dir; fail with its output."""
    base = tmp_path_factory.mktemp("probes")
    env = {**os.environ, "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = {}
    for name in PROBES:
        out = base / name
        args = [sys.executable, str(ROOT / "train.py"), f"experiment={name}", "logger=wandb", "logger.mode=offline",
                f"hydra.run.dir={out}"]  # the default logger: it must take every table a probe writes
        procs[name] = (out, subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True))
    dirs = {}
    for name, (out, p) in procs.items():
        log, _ = p.communicate(timeout=240)
        assert p.returncode == 0, f"train.py experiment={name} failed ({p.returncode}):\n{log[-5000:]}"
        dirs[name] = out
    return dirs


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@SLOW
@pytest.mark.parametrize("name,files", [
    ("even_drift", ["drift.csv", "drift.png", "feature_maps.png", "README.md", "metrics.json"]),
    ("even_erosion", ["erosion.csv", "erosion.png", "README.md", "metrics.json"]),
    ("dilation_degeneration", ["valid_weights.csv", "valid_weights.png", "dilation_mae.csv", "dilation_mae.png",
                               "README.md", "metrics.json"]),
    ("conv_arithmetic", ["arithmetic.csv", "arithmetic.md", "octave_ratios.png", "README.md", "metrics.json"]),
    ("paper_tables", ["paper_tables.csv", "paper_tables.md", "paper_tables.png", "README.md", "metrics.json"]),
])
def test_probe_writes_its_files(probe_runs, name, files):
    d = probe_runs[name]
    for f in files:
        assert (d / f).is_file() and (d / f).stat().st_size > 0, f"{name}: {f} missing"
    m = _metrics(d)
    assert m["status"] == "ok" and m["task"] == "probe"
    assert "train.py" in (d / "README.md").read_text() and f"experiment={name}" in (d / "README.md").read_text()


@SLOW
def test_even_drift_c2_moves_half_a_pixel_per_layer_c2sp_stays(probe_runs):
    rows = _csv(probe_runs["even_drift"] / "drift.csv")
    assert list(rows[0])[:4] == ["kernel", "depth", "dy", "dx"]
    at = {(r["kernel"], int(r["depth"])): (float(r["dy"]), float(r["dx"])) for r in rows}
    for n in (8, 16):
        dy, dx = at[("c2", n)]
        assert dy < 0 and dx < 0, "C2 drifts towards the top-left"
        assert abs(dy + n / 2) <= 0.25 and abs(dx + n / 2) <= 0.25, (n, dy, dx)
        dy, dx = at[("c4", n)]  # C4's 'same' padding (1 left, 2 right) is just as asymmetric
        assert abs(dy + n / 2) <= 0.25 and abs(dx + n / 2) <= 0.25, (n, dy, dx)
    for kind in ("c2sp", "c3", "c4sp", "c5"):
        for n in range(0, 25):
            dy, dx = at[(kind, n)]
            assert abs(dy) <= 0.5 and abs(dx) <= 0.5, (kind, n, dy, dx)


@SLOW
def test_even_erosion_c2_c4_erode_faster_than_c3_c2sp(probe_runs):
    rows = _csv(probe_runs["even_erosion"] / "erosion.csv")
    assert list(rows[0])[:3] == ["kernel", "layer", "q"]
    q = {(r["kernel"], int(r["layer"])): float(r["q"]) for r in rows}
    last = max(int(r["layer"]) for r in rows)
    assert last == 54
    for kind in ("c2", "c2sp", "c3", "c4", "c4sp", "c5"):
        assert abs(q[(kind, 0)] - 0.5) < 0.02, "U[0,1] input: Q_0 ~ 0.5"
        seq = [q[(kind, n)] for n in range(last + 1)]
        assert all(b < a for a, b in zip(seq, seq[1:])), f"{kind}: Q_n < Q_(n-1) (erosion)"
    for fast in ("c2", "c4"):
        for slow in ("c3", "c2sp"):
            assert q[(fast, last)] < q[(slow, last)], (fast, slow)
    assert q[("c2sp", last)] > q[("c3", last)], "poster ordering at layer 54: C2sp > C3"


@SLOW
def test_dilation_valid_weights_and_mae(probe_runs):
    d = probe_runs["dilation_degeneration"]
    rows = _csv(d / "valid_weights.csv")
    assert list(rows[0])[:1] == ["rate"] and {"frac_1", "frac_4", "frac_9"} <= set(rows[0])
    by_rate = {int(r["rate"]): r for r in rows}
    assert set(by_rate) == set(range(1, 67))
    for r, row in by_rate.items():
        fr = {k: float(v) for k, v in row.items() if k.startswith("frac_")}
        assert abs(sum(fr.values()) - 1) < 1e-12
        if r >= 33:
            assert fr["frac_9"] == 0.0, r
        else:
            assert fr["frac_9"] > 0.0, r
        if r >= 65:
            assert fr["frac_1"] == 1.0, r
        else:
            assert fr["frac_1"] < 1.0, r
    m = _metrics(d)
    assert m["rate_frac9_zero"] == 33 and m["rate_frac1_one"] == 65 and m["counts_cross_checked"] == 1
    mae = {int(r["rate"]): float(r["mae"]) for r in _csv(d / "dilation_mae.csv")}
    assert set(mae) == set(range(1, 18))
    assert all(mae[r] == 0.0 for r in (16, 17))
    assert all(mae[r] > 0.0 for r in range(1, 16))


@SLOW
def test_conv_arithmetic_every_row_agrees(probe_runs):
    d = probe_runs["conv_arithmetic"]
    rows = _csv(d / "arithmetic.csv")
    assert list(rows[0])[:6] == ["section", "name", "quantity", "measured", "analytic", "agree"]
    sections = {r["section"] for r in rows}
    assert {"output_size", "complexity", "octave", "receptive_field", "models"} <= sections
    bad = [f"{r['name']} {r['quantity']}: {r['measured']} vs {r['analytic']}" for r in rows if r["agree"] != "1"]
    assert not bad, "rows disagree:\n" + "\n".join(bad)
    octs = [r for r in rows if r["section"] == "octave" and r["quantity"].endswith("ratio")]
    assert len(octs) == 10
    for r in octs:
        assert abs(float(r["measured"]) - float(r["analytic"])) <= 0.01, r
    m = _metrics(d)
    assert m["all_agree"] == 1 and m["n_rows"] == len(rows) and m["rf_models_missing"] == 0
    assert abs(m["octave_mac_ratio_a0125"] - 0.82) < 0.01 and abs(m["octave_mem_ratio_a0125"] - 0.91) < 0.01
    md = (d / "arithmetic.md").read_text()
    assert md.count("\n| ") == len(rows) + 1  # header + one line per CSV row


def test_even_erosion_trained_path_from_a_checkpoint(tmp_path):
    """probe.checkpoint: Q after every spatial conv / residual block of a network saved like train.py does."""
    from engine.checkpoint import save_atomic
    from experiments import even_erosion
    from models import create_model

    model_cfg = {"_target_": "models.create_model", "name": "resnet20", "num_classes": 10, "in_channels": 3,
                 "conv": "c2sp", "width": 0.25}
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_channels=3, conv="c2sp", width=0.25)
    ckpt = tmp_path / "last.pt"
    save_atomic({"model": model.state_dict(), "config": {"model": model_cfg, "data": {"channels": 3, "image_size": 16}}},
                ckpt)
    logger = _FakeLogger()
    m = even_erosion.run(str(tmp_path / "out"), logger, kinds=("c3",), layers_per_stage=2, checkpoint=str(ckpt))
    rows = _csv(tmp_path / "out" / "erosion.csv")
    conv = [r for r in rows if r["kernel"] == "trained_conv"]
    block = [r for r in rows if r["kernel"] == "trained_block"]
    assert len(conv) == 1 + 19  # layer 0 (the input) + stem + 18 block convs (1x1 shortcuts skipped)
    assert len(block) == 1 + 9
    assert [int(r["size"]) for r in conv][-1] == 4  # 16 -> 8 -> 4
    assert m["n_layers_trained_conv"] == 19 and m["n_layers_trained_block"] == 9
    assert set(logger.tables) == {"erosion"} and set(logger.images) == {"erosion"}


def test_trained_erosion_probe_reads_every_run_and_applies_the_rule(tmp_path):
    """One Q curve per run from the checkpoints of one profile; the verdict is the stated rule over runs."""
    from engine.checkpoint import save_atomic
    from engine.validate import ConfigError
    from experiments import trained_erosion
    from experiments.stats import verdict
    from models import create_model

    for i, (conv, seed) in enumerate([(c, s) for c in ("c2", "c2sp", "c3") for s in (0, 1)]):
        save_atomic(even_state(conv, seed), tmp_path / "sweep" / str(i) / "checkpoints" / "last.pt")
    save_atomic(even_state("c2", 5, profile="quick"), tmp_path / "sweep" / "q" / "checkpoints" / "last.pt")
    logger = _FakeLogger()
    m = trained_erosion.run(str(tmp_path / "out"), logger, checkpoints=str(tmp_path / "sweep"), images=16,
                            profile="standard")
    rows = _csv(tmp_path / "out" / "trained_erosion.csv")
    assert len({r["run"] for r in rows}) == 6 and m["n_runs"] == 6 and m["n_from_records"] == 0 and m["profile"] == "standard"
    block = [r for r in rows if r["curve"] == "block"]
    assert len(block) == 6 * (1 + 9)  # per run: the input + 9 residual blocks
    last = {}  # log10 Q at the last block of each run, straight from the CSV
    for r in block:
        if r["layer"] == "9":
            last.setdefault(r["conv"], []).append(math.log10(float(r["q"])))
    assert m["runs_c2"] == m["runs_c2sp"] == m["runs_c3"] == 2
    for a in ("c2sp", "c3"):  # each interval is the stated rule on the CSV's own numbers
        expect = verdict(last[a], last["c2"])
        assert math.isclose(m[f"{a}_minus_c2"], expect["diff"], rel_tol=1e-9) and m[f"{a}_vs_c2"] == expect["verdict"]
    parts = {m["c2sp_vs_c2"], m["c3_vs_c2"]}
    assert m["verdict"] == ("reproduced" if parts == {"reproduced"} else
                            "not reproduced" if "not reproduced" in parts else "inconclusive")
    assert set(logger.tables) == {"trained_erosion"} and (tmp_path / "out" / "trained_erosion.png").exists()
    with pytest.raises(ConfigError, match="of profile 'paper'"):
        trained_erosion.run(str(tmp_path / "none"), logger, checkpoints=str(tmp_path / "sweep"), profile="paper")
    with pytest.raises(ConfigError, match=r"runs of 2 profiles \(quick, standard\); pick one with probe.profile"):
        trained_erosion.run(str(tmp_path / "both"), logger, checkpoints=str(tmp_path / "sweep"))
    deep = even_state("c2", 7)
    deep["config"]["model"]["name"] = "resnet56"
    deep["model"] = create_model("resnet56", num_classes=10, in_channels=3, conv="c2", width=0.25).state_dict()
    save_atomic(deep, tmp_path / "sweep" / "deep" / "checkpoints" / "last.pt")
    with pytest.raises(ConfigError, match="runs of 2 models"):  # never pools depths into one sample
        trained_erosion.run(str(tmp_path / "mixed"), logger, checkpoints=str(tmp_path / "sweep"), profile="standard")
    assert trained_erosion.run(str(tmp_path / "d56"), logger, checkpoints=str(tmp_path / "sweep"), images=8,
                               profile="standard", model="resnet56")["runs_c2"] == 1


@pytest.mark.parametrize("q, expected", [
    ({"c2": [1e-3, 2e-3, 1.5e-3], "c2sp": [0.1, 0.11, 0.09], "c3": [0.05, 0.06, 0.055]}, "reproduced"),
    ({"c2": [0.1, 0.11, 0.09], "c2sp": [1e-3, 2e-3, 1.5e-3], "c3": [0.05, 0.06, 0.055]}, "not reproduced"),
    ({"c2": [0.01, 0.1, 0.05], "c2sp": [0.1, 0.01, 0.05], "c3": [0.05, 0.06, 0.055]}, "inconclusive"),
    ({"c2": [1e-3], "c2sp": [0.1, 0.11], "c3": [0.05, 0.06]}, "no verdict: needs at least 2 runs each of C2, C2sp and C3"),
])
def test_trained_erosion_rule(q, expected):
    """Both C2sp - C2 and C3 - C2 (log10 Q at the last block) above 0: reproduced; either below: not."""
    from experiments.trained_erosion import summarise

    rows = [{"run": f"{conv}{i}", "conv": conv, "seed": i, "curve": "block", "layer": layer, "size": 8,
             "q": v if layer == 9 else 0.5}
            for conv, vals in q.items() for i, v in enumerate(vals) for layer in (0, 9)]
    assert summarise(rows)["verdict"] == expected


def test_results_md_shows_each_profile_of_a_trained_probe(tmp_path):
    """results/<probe>_<profile>/ gets its own tagged line, with the verdict the probe computed by its rule."""
    from experiments.results_md import render

    base = {"log10_q_last_block_c2": -2.0, "runs_c2": 3, "log10_q_last_block_c2sp": -1.0, "runs_c2sp": 3,
            "log10_q_last_block_c3": -1.2, "runs_c3": 3, "c2sp_minus_c2": 1.0, "c2sp_minus_c2_ci_low": 0.5,
            "c2sp_minus_c2_ci_high": 1.5, "c3_minus_c2": 0.8, "c3_minus_c2_ci_low": -0.1, "c3_minus_c2_ci_high": 1.7}
    for name, extra in (("trained_erosion_standard", {"verdict": "inconclusive", "profile": "standard"}),
                        ("trained_erosion_quick", {"verdict": "reproduced", "profile": "quick"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({**base, **extra, "date": "2026-11-26"}))
    text = render(tmp_path, {})
    row = next(line for line in text.splitlines() if line.startswith("| trained_erosion |"))
    assert row == "| trained_erosion | 000 | reproduced (quick); inconclusive (standard) |"
    assert "**Verdict standard:** inconclusive (rule: 95% Welch intervals" in text
    assert "standard-profile nets: Q at the last block (geometric mean over runs) C2 0.01 (n=3)" in text


@pytest.mark.parametrize("change, expected", [
    ({}, "reproduced"),
    ({"rate_frac1_one": 64}, "not reproduced"),  # a miscount that degenerates early is not a pass
    ({"rate_frac9_zero": -1}, "no verdict: the probe's largest rate is below a map size"),
    ({"kernel_size": 5}, "no verdict: the rule is stated for 3x3 filters"),
])
def test_dilation_verdict_is_exact_and_follows_the_map_sizes(change, expected):
    from experiments.results_md import dilation_verdict

    m = {"map_size": 65, "mae_map_size": 16, "kernel_size": 3, "rate_frac9_zero": 33, "rate_frac1_one": 65,
         "rate_mae_zero": 16, "mae_rate_15": 0.5, **change}
    assert dilation_verdict(m)[1].startswith(expected)
    if not change:  # another map size: its own thresholds
        assert dilation_verdict(dict(m, map_size=33, rate_frac9_zero=17, rate_frac1_one=33))[1].startswith("reproduced")
        assert dilation_verdict(dict(m, map_size=33))[1].startswith("not reproduced")


def test_probe_kinds_default_to_the_factory_and_refuse_a_string_or_nothing():
    from engine.validate import ConfigError
    from experiments.probe_utils import probe_kinds
    from models.layers import SPATIAL_KINDS

    assert probe_kinds(None) == SPATIAL_KINDS and probe_kinds(["c2", "c3"]) == ("c2", "c3")
    for bad, said in (("c2", "give a list"), ([], "give a list"), (["c2", "c7"], "unknown c7")):
        with pytest.raises(ConfigError, match=said):
            probe_kinds(bad)


@pytest.mark.parametrize("cell, value", [("3", 3), ("-2", -2), ("0.25", 0.25), ("1e-3", 0.001), ("c2sp", "c2sp"),
                                         ("", "")])
def test_a_csv_cell_reads_back_as_the_number_it_spells(cell, value):
    from experiments.probe_utils import number

    got = number(cell)
    assert got == value and type(got) is type(value)
