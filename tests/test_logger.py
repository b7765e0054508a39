"""The default wandb logger (offline) takes everything the experiments log, tables of mixed columns included.

The four training-free probes of ``tests/test_probes.py`` run there with this logger; every other experiment
config runs here once, with a tiny synthetic override set.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.logger import WandbLogger
from tests.helpers import ROOT, read_metrics, run_cli
from tests.test_probes import PROBES

WANDB = ("logger=wandb", "logger.mode=offline")
TINY = ("data=synthetic", "data.image_size=16", "data.train_size=512", "data.test_size=128", "data.val_size=128",
        "data.batch_size=64", "trainer.epochs=1", "model.width=0.5", "trainer.threads=1")
# (model.width=0.25 -- 4-channel convs in channels_last -- crashes the CPU backward with one thread: heap corruption)
TRAINED = {
    "smoke": (),
    "even_kernels": ("model.conv=c2sp",),
    "blurpool": ("model.filt_size=3", "evaluators.shift.passes=1", "evaluators.shift.max_images=32"),
    "octave": ("model.alpha=0.5",),
    "precision": ("data.train_subset=256",),
    "rednet": ("model.kernel_size=3", "model.width=1.0"),  # involution groups need multiples of 32 channels
    "rednet_baseline": (),
    "recipe_tuning": ("optim.lr=0.2",),
}


def _tables(run_dir: Path) -> dict[str, dict]:
    """The tables an offline wandb run saved under ``run_dir``: file stem -> {columns, data}."""
    files = run_dir.glob("wandb/offline-run-*/files/media/table/**/*.table.json")
    return {p.name.split("_")[0]: json.loads(p.read_text()) for p in files}


def test_log_table_types_each_column_once(tmp_path):
    """wandb.Table needs one type per column: a column of numbers and text (conv_arithmetic's tol) stays text."""
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("name,n,x,tol\na,1,0.5,exact\nb,2,,0.005\nc,3,1e3,\n")
    logger = WandbLogger(project="test", mode="offline", save_dir=str(tmp_path))
    logger.log_table("mixed", str(csv_path))
    logger.finish()
    table = _tables(tmp_path)["mixed"]
    assert table["columns"] == ["name", "n", "x", "tol"]
    assert table["data"] == [["a", 1, 0.5, "exact"], ["b", 2, None, "0.005"], ["c", 3, 1000.0, None]]


def test_every_experiment_config_is_run_with_the_wandb_logger():
    experiments = {p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml")}
    assert experiments == set(PROBES) | set(TRAINED) | {"trained_drift", "trained_erosion"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "run"
    run_cli("experiment=smoke", *WANDB, *TINY, run_dir=out)
    return out


@pytest.mark.slow  # one tiny training run per experiment, about 10 s each
@pytest.mark.parametrize("experiment", sorted(TRAINED))
def test_trained_experiment_runs_with_the_wandb_logger(experiment, smoke_run, tmp_path):
    out = smoke_run if experiment == "smoke" else tmp_path / "run"
    if experiment != "smoke":
        run_cli(f"experiment={experiment}", *WANDB, *TINY, *TRAINED[experiment], run_dir=out)
    assert read_metrics(out)["status"] == "ok"
    assert len(list(out.glob("wandb/offline-run-*/run-*.wandb"))) == 1


@pytest.mark.slow
@pytest.mark.parametrize("probe", ["trained_drift", "trained_erosion"])
def test_trained_probe_runs_with_the_wandb_logger(probe, smoke_run, tmp_path):
    run_cli(f"experiment={probe}", *WANDB, f"probe.checkpoints={smoke_run}/checkpoints/last.pt", "probe.experiment=smoke",
            "probe.images=32", run_dir=tmp_path / "probe", env={"CONVLAB_RECORDS": str(tmp_path / "records")})
    assert read_metrics(tmp_path / "probe")["status"] == "ok"
    assert _tables(tmp_path / "probe"), "the probe logged no table"
