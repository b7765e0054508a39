"""Run records: the config hash, one record per finished run, sweeps that skip recorded configs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from engine.records import config_diff, config_hash, find_record, training_config
from tests.helpers import ROOT, run_cli

TINY = ("data=synthetic", "data.train_size=512", "data.test_size=128", "data.val_size=128", "data.batch_size=64",
        "model.width=0.25", "trainer.epochs=2", "logger=none", "trainer.threads=1",
        "trainer.channels_last=false")  # torch 2.14.1 CPU fp32 crashes on NHWC 1x1/2 convs with < 8 input channels


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_hash_ignores_layout_logging_and_threads_but_not_training_keys():
    base = config_hash(_cfg())
    for same in ("logger=none", "trainer.threads=1", "trainer.progress=false", "paths.data_dir=/elsewhere",
                 "trainer.device=cpu", "tags=[x]", "experiment_name=renamed"):
        assert config_hash(_cfg(same)) == base, same
    for other in ("optim.lr=0.3", "seed=1", "model.conv=c2", "trainer.epochs=11", "data.augment=false",
                  "model=resnet56", "trainer.label_smoothing=0.0"):
        assert config_hash(_cfg(other)) != base, other


def test_hash_keeps_only_the_last_target_component():
    cfg = training_config(_cfg())
    assert cfg["optim"]["_target_"] == "SGD" and cfg["sched"]["_target_"] == "onecycle"
    assert "paths" not in cfg and "logger" not in cfg and "root" not in cfg["data"]


def test_config_diff_names_the_changed_keys():
    a, b = training_config(_cfg()), training_config(_cfg("optim.lr=0.3", "trainer.epochs=3"))
    assert config_diff(a, b) == ["optim.lr", "trainer.epochs"]


@pytest.mark.slow
def test_a_run_writes_a_record_and_a_recorded_sweep_skips_it(tmp_path):
    records = tmp_path / "records"
    env = {"CONVLAB_RECORDS": str(records)}
    run_cli(*TINY, "seed=3", run_dir=tmp_path / "a", env=env)
    files = list(records.rglob("*.json"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    assert rec["status"] == "ok" and rec["seed"] == 3 and len(rec["history"]) == 2
    assert rec["history"][-1]["epoch"] == 2 and "val_acc" in rec["history"][0]
    assert "seed=3" in rec["overrides"] and "data=synthetic" in rec["overrides"]
    assert len(rec["git"]["commit"] or "") == 40 and isinstance(rec["git"]["dirty"], bool)
    assert rec["metrics"]["test_acc"] == json.loads((tmp_path / "a" / "metrics.json").read_text())["test_acc"]
    assert find_record(records, rec["config_hash"])["path"] == str(files[0])
    # the same config in another run dir is skipped; a changed training key is not
    proc = run_cli(*TINY, "seed=3", "trainer.skip_recorded=true", run_dir=tmp_path / "b", env=env)
    assert "already has a record" in proc.stdout + proc.stderr
    assert not (tmp_path / "b" / "checkpoints").exists()
    run_cli(*TINY, "seed=3", "trainer.skip_recorded=true", "optim.lr=0.1", run_dir=tmp_path / "c", env=env)
    assert len(list(records.rglob("*.json"))) == 2


@pytest.mark.slow
def test_a_failed_run_is_recorded_as_failed(tmp_path):
    records = tmp_path / "records"
    proc = run_cli(*TINY, "optim.lr=1e12", "trainer.label_smoothing=0.0", run_dir=tmp_path / "a",
                   env={"CONVLAB_RECORDS": str(records)}, check=False)
    assert proc.returncode != 0
    (rec,) = [json.loads(p.read_text()) for p in records.rglob("*.json")]
    assert rec["status"] == "failed" and rec["metrics"]["error"]
    assert find_record(records, rec["config_hash"]) is None  # a failed record never causes a skip


def test_generated_outputs_do_not_make_the_code_dirty(tmp_path):
    """A probe rewriting results/ (or RESULTS.md) leaves the code clean; a changed source file does not."""
    import subprocess

    from engine.records import git_state

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "out.csv").write_text("a\n")
    (tmp_path / "RESULTS.md").write_text("r\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    state = git_state.__wrapped__  # uncached
    assert state(str(tmp_path))["dirty"] is False
    (tmp_path / "results" / "out.csv").write_text("b\n")
    (tmp_path / "RESULTS.md").write_text("s\n")
    assert state(str(tmp_path))["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert state(str(tmp_path))["dirty"] is True
