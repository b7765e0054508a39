"""Run records: the config hash, one record per finished run, sweeps that skip recorded configs."""
from __future__ import annotations

import json

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


# ------------------------------------------------------------------------------------ resumed runs
SMALL = ("experiment=smoke", "logger=none", "trainer.precision=fp32", "data.train_size=576", "data.val_size=64",
         "data.test_size=128", "data.batch_size=64", "data.image_size=8", "model.width=0.5", "trainer.progress=false",
         "trainer.epochs=3", "trainer.threads=1")  # 9 steps of 8x8 images an epoch (width 0.5: tests/test_engine.py)


def test_a_resumed_run_records_each_segment_and_the_report_lists_their_commits(tmp_path, monkeypatch, request):
    """Stopped by SIGTERM after epoch 1 on one commit, resumed on another: the record names both segments
    (positions, commits, times), and the report's provenance line lists both commits as MIXED."""
    import os
    import signal

    import torch
    from omegaconf import open_dict

    import engine.loop
    from engine import records
    from engine.job import train
    from engine.preempt import Preempted
    from experiments import report, runs

    request.addfinalizer(lambda n=torch.get_num_threads(): torch.set_num_threads(n))  # train() sets 1
    cfg = _cfg(*SMALL)
    with open_dict(cfg):
        cfg.paths.output_dir, cfg.paths.records_dir = str(tmp_path / "run"), str(tmp_path / "records")
    real_log = engine.loop.log_epoch
    monkeypatch.setattr(engine.loop, "log_epoch", lambda logger, row, epochs: (
        real_log(logger, row, epochs), os.kill(os.getpid(), signal.SIGTERM)))  # stop after epoch 1
    monkeypatch.setattr(records, "git_state", lambda: {"commit": "a" * 40, "dirty": False})
    with pytest.raises(Preempted, match="after epoch 1"):
        train(cfg)
    assert not list((tmp_path / "records").rglob("*.json"))  # an interrupted run leaves no record
    monkeypatch.setattr(engine.loop, "log_epoch", real_log)
    monkeypatch.setattr(records, "git_state", lambda: {"commit": "b" * 40, "dirty": True})
    metrics = train(cfg)
    assert metrics["status"] == "ok"

    (path,) = (tmp_path / "records").rglob("*.json")
    rec = json.loads(path.read_text())
    first, second = rec["segments"]
    assert (first["from"], first["to"], second["from"], second["to"]) == (
        "start", "after epoch 1", "after epoch 1", "after epoch 3")
    assert (first["git_commit"], first["git_dirty"], second["git_commit"], second["git_dirty"]) == (
        "a" * 40, False, "b" * 40, True)
    assert first["hardware"] == second["hardware"] == rec["hardware"] and first["ended"] <= second["started"]
    assert first["train_time_s"] + second["train_time_s"] == pytest.approx(rec["metrics"]["train_time_s"])
    assert first["train_time_s"] == pytest.approx(rec["history"][0]["epoch_time_s"])

    (row,), _ = runs.collect([tmp_path / "records"])
    assert (row["git_commit"], row["segments"], row["partial_provenance"]) == (
        "aaaaaaaaaa; bbbbbbbbbb+dirty", 2, False)
    line = report._provenance([row], [])
    assert "Code (MIXED): aaaaaaaaaa; bbbbbbbbbb+dirty" in line and "1 run(s) resumed" in line


def test_a_run_resumed_before_segments_were_recorded_is_flagged():
    """An older record (no segments) whose process ran shorter than its training names only its last part."""
    from experiments import runs

    rec = {"git": {"commit": "c" * 40, "dirty": False}, "hardware": "box, 2 thread(s)",
           "metrics": {"wall_time_s": 3719.8, "train_time_s": 22121.0}}
    assert runs.provenance(rec) == {"git_commit": "cccccccccc", "hardware": "box, 2 thread(s)", "segments": 0,
                                    "partial_provenance": True, "notes": ""}
    whole = {**rec, "metrics": {"wall_time_s": 100.0, "train_time_s": 90.0}}
    assert runs.provenance(whole)["partial_provenance"] is False
    resumed_old_checkpoint = {**rec, "segments": [{"from": "after epoch 2", "git_commit": "d" * 40,
                                                   "git_dirty": False, "hardware": "box"}]}
    assert runs.provenance(resumed_old_checkpoint)["partial_provenance"] is True


def test_a_resume_on_another_device_type_is_listed_with_its_note_in_runs_and_the_provenance_line():
    """A GPU lease's checkpoint finished on a CPU: both machines are listed, and the segment's note (the data
    generator reseeded, engine.state.set_rng_state) reaches runs.csv and the report's provenance line."""
    from experiments import report, runs

    note = "data RNG reseeded: the checkpoint's data generator ran on cuda, this run trains on cpu (...)"
    seg = {"git_commit": "e" * 40, "git_dirty": False}
    rec = {"segments": [{**seg, "from": "start", "hardware": "xeon, 1 thread(s), NVIDIA H200"},
                        {**seg, "from": "at epoch 24, step 109", "hardware": "epyc, 1 thread(s)", "note": note}],
           "metrics": {}}
    prov = runs.provenance(rec)
    assert prov["notes"] == note and prov["hardware"] == "xeon, 1 thread(s), NVIDIA H200; epyc, 1 thread(s)"
    row = {**prov, "date": "2026-11-27", "backfilled": False, "dataset": "d", "train_subset": None, "epochs": 1}
    line = report._provenance([row, {**row, "notes": ""}], [])
    assert "Hardware (MIXED)" in line and "1 run(s) resumed with a note (runs.csv: notes)" in line
    assert "with a note" not in report._provenance([{**row, "notes": ""}], [])


@pytest.mark.parametrize("flags, isa", [("fpu sse2 avx2 fma", "avx2"), ("avx2 avx512f avx512_bf16 avx512vl", "avx512_bf16"),
                                        ("avx2 avx512f avx512_bf16 amx_bf16 amx_tile", "amx_bf16"), ("fpu sse2", "")])
def test_the_hardware_string_tells_apart_cpus_of_one_model_name(tmp_path, monkeypatch, flags, isa):
    """Two virtual CPUs report "AMD EPYC"; one has AVX2 only, the other AVX-512 bf16 and trains faster: the
    hardware string (and so the report's per-hardware speeds and run_grid's estimates) must not pool them."""
    from engine import provenance
    from experiments.rules import speed_hardware

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    monkeypatch.setattr(provenance, "CPUINFO", str(cpuinfo))
    name = provenance.machine_name()
    assert name.startswith("AMD EPYC" + (f" [{isa}]" if isa else "") + " (")
    hardware = provenance.hardware(None)
    assert speed_hardware(hardware) == f"{name}, {hardware.rsplit(', ', 1)[1]}"  # still "<CPU>, <t> thread(s)"
