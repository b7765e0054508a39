"""Reliability (issue 8): kill + resume, atomic writes, corrupt checkpoints, NaN runs, failing sweep jobs,
wandb online without a network. Faults are injected in subprocesses; everything runs offline."""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.checkpoint import CheckpointError, load_checkpoint, remove_stale_temps
from tests.helpers import ROOT, read_metrics, run_cli

pytestmark = pytest.mark.slow  # every test here runs train.py end to end

# sub-second epochs: 8 steps of 64 images 8x8, resnet20 at width 0.5 (at 0.25, torch 2.14.1's CPU backward of
# a channels_last 1x1 stride-2 conv from 4 to 8 channels corrupts the heap on this machine)
TINY = ["experiment=smoke", "trainer.precision=fp32", "data.train_size=576", "data.val_size=64",
        "data.test_size=64", "data.batch_size=64", "data.image_size=8", "model.width=0.5"]
COMPARED = ("test_acc", "test_loss", "val_acc", "val_loss", "train_loss")
# One thread per run: an oversubscribed shared machine makes OpenMP spin for seconds per step.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _env(**extra: str) -> dict:
    env = {**os.environ, "WANDB_SILENT": "true", **ONE_THREAD, **extra}
    return {k: v for k, v in env.items() if v is not None}


def _train_cmd(*overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *overrides]


def _wandb_runs(run_dir: Path) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(str(run_dir / "wandb" / "offline-run-*")))


def _wandb_summary(run: Path) -> dict:
    out = subprocess.run(["wandb", "leet", "inspect", "--summary", "--json", str(run)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return json.loads(out)


def _stderr_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("wandb:")]


# --------------------------------------------------------------------------------------------- resume
def test_sigkilled_run_resumes_to_the_same_metrics_and_wandb_run(tmp_path):
    epochs = 4  # killed right after epoch 1's checkpoint: 3 epochs of margin for a slow poller
    args = [*TINY, f"trainer.epochs={epochs}", "logger=wandb"]
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    quiet = dict(cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ref = subprocess.Popen(_train_cmd(*args, f"hydra.run.dir={ref_dir}"), **quiet)
    victim = subprocess.Popen(_train_cmd(*args, f"hydra.run.dir={run_dir}"), **quiet)
    ckpt = run_dir / "checkpoints" / "last.pt"
    deadline = time.time() + 240
    while not ckpt.exists():  # appears atomically after epoch 1
        assert victim.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)  # mid epoch 2
    victim.wait()
    assert not (run_dir / "metrics.json").exists(), "the run finished before it could be killed"
    assert load_checkpoint(ckpt)["epoch"] < epochs
    half = ckpt.read_bytes()
    stale = ckpt.parent / ".last.pt.killed.tmp"  # as left by a kill during the next save
    stale.write_bytes(half[: len(half) // 2])

    resumed = subprocess.run(_train_cmd(*args, f"hydra.run.dir={run_dir}"), cwd=ROOT, env=_env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert ref.wait(timeout=300) == 0
    assert not stale.exists()
    log_text = (run_dir / "train.log").read_text()
    assert "resumed from" in log_text and "partial checkpoint" in log_text

    ref_m, res_m = read_metrics(ref_dir), read_metrics(run_dir)
    assert res_m["status"] == "ok"
    assert {k: res_m[k] for k in COMPARED} == {k: ref_m[k] for k in COMPARED}  # bit-exact
    assert load_checkpoint(ckpt)["epoch"] == epochs

    runs = _wandb_runs(run_dir)  # offline resume: a second offline-run dir with the same run id
    assert len(runs) == 2 and len({r.name.rsplit("-", 1)[1] for r in runs}) == 1, runs
    last = _wandb_summary(runs[-1])
    assert last["run_id"] == runs[0].name.rsplit("-", 1)[1]
    assert last["state"] == "finished" and last["summary"]["test_acc"] == ref_m["test_acc"]


# ------------------------------------------------------------------------------------- atomic writes
KILL_DURING_SAVE = r"""
import os, sys, torch
from engine.checkpoint import save_atomic, write_json_atomic
path, kind = sys.argv[1], sys.argv[2]
first = {"model": {"w": torch.ones(1000)}, "config": {}, "epoch": 1}
if kind == "checkpoint":
    save_atomic(first, path)
    real_save = torch.save
    def half_save(obj, f):
        import io
        buf = io.BytesIO(); real_save(obj, buf); data = buf.getvalue()
        f.write(data[: len(data) // 2]); f.flush(); os._exit(9)   # killed half-way through the write
    torch.save = half_save
    save_atomic({**first, "epoch": 2}, path)
else:
    write_json_atomic({"status": "ok", "test_acc": 1.0}, path)
    import json
    json.dumps = lambda *a, **k: os._exit(9)
    write_json_atomic({"status": "running"}, path)
"""


@pytest.mark.parametrize("kind", ["checkpoint", "json"])
def test_kill_during_a_save_keeps_the_previous_file(tmp_path, kind):
    path = tmp_path / ("last.pt" if kind == "checkpoint" else "metrics.json")
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, str(path), kind], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    if kind == "checkpoint":
        assert load_checkpoint(path)["epoch"] == 1
        leftovers = remove_stale_temps(path)
        assert len(leftovers) == 1 and not leftovers[0].exists()
    else:
        assert json.loads(path.read_text()) == {"status": "ok", "test_acc": 1.0}


def test_corrupt_checkpoint_refuses_to_resume_with_one_line(tmp_path):
    run_dir = tmp_path / "run"
    ckpt = run_dir / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    garbage = b"PK\x03\x04" + os.urandom(300)
    ckpt.write_bytes(garbage)
    with pytest.raises(CheckpointError, match="is unreadable"):
        load_checkpoint(ckpt)
    proc = run_cli(*TINY, "logger=none", run_dir=run_dir, check=False, timeout=120, env=ONE_THREAD)
    assert proc.returncode == 2
    lines = _stderr_lines(proc)
    assert len(lines) == 1 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert lines[0].startswith(f"checkpoint error: checkpoint {ckpt} is unreadable")
    assert "delete it" in lines[0] and "hydra.run.dir" in lines[0]
    assert ckpt.read_bytes() == garbage  # nothing lost


# ----------------------------------------------------------------------------------- non-finite loss
def test_nan_loss_fails_cleanly_and_keeps_the_last_good_checkpoint(tmp_path):
    """lr x 1e30 after epoch 1 (step schedule): epoch 1 is fine and checkpointed, epoch 2 diverges."""
    run_dir = tmp_path / "run"
    proc = run_cli(*TINY, "logger=wandb", "trainer.epochs=2", "sched=step", "sched.gamma=1e30",
                   "sched.milestones=[0.5]", run_dir=run_dir, check=False, timeout=180, env=ONE_THREAD)
    assert proc.returncode == 1
    lines = _stderr_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("training failed: training loss is nan at epoch 2"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    m = read_metrics(run_dir)
    assert m["status"] == "failed" and "nan" in m["error"]
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and all(t.isfinite().all() for t in state["model"].values() if t.is_floating_point())
    (run,) = _wandb_runs(run_dir)
    summary = _wandb_summary(run)
    assert summary["state"] == "failed" and summary["exit_code"] == 1
    assert summary["summary"]["status"] == "failed"


# ------------------------------------------------------------------------------------------- sweeps
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_failing_sweep_job_neither_stops_the_sweep_nor_loses_results(tmp_path, launcher):
    lrs = "0.1,1e30,-1" if launcher == "basic" else "0.1,1e30"  # ok, NaN, config error
    extra = ["hydra/launcher=parallel"] if launcher == "joblib" else []
    proc = run_cli(*extra, *TINY, "logger=none", "trainer.epochs=1", f"optim.lr={lrs}",
                   f"hydra.sweep.dir={tmp_path}", multirun=True, check=False, timeout=240, env=ONE_THREAD)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    n = len(lrs.split(","))
    results = [read_metrics(tmp_path / str(i)) for i in range(n)]
    assert [r["status"] for r in results] == ["ok"] + ["failed"] * (n - 1)
    assert results[0]["test_acc"] >= 0 and (tmp_path / "0" / "checkpoints" / "last.pt").is_file()
    assert "training loss is nan" in results[1]["error"]
    if n == 3:
        assert results[2]["error"].startswith("optim.lr=-1 is invalid")
    assert "job failed: training loss is nan" in (tmp_path / "1" / "train.log").read_text()

    summary = json.loads((tmp_path / "multirun_summary.json").read_text())
    assert summary["jobs"] == n and summary["failed"] == n - 1
    assert [r["status"] for r in summary["results"]] == [r["status"] for r in results]
    assert f"{n - 1} of {n} jobs failed" in proc.stderr
    table = proc.stdout[proc.stdout.index("status"):]
    assert "optim.lr=0.1" in table and "-> training loss is nan" in table


# -------------------------------------------------------------------------------------------- wandb
def test_wandb_online_without_network_falls_back_to_offline_quickly(tmp_path):
    run_dir = tmp_path / "run"
    env = _env(WANDB_API_KEY="0123456789abcdef0123456789abcdef01234567", WANDB_BASE_URL="http://127.0.0.1:9",
               WANDB_MODE=None)  # closed port; no WANDB_MODE=offline from conftest
    t0 = time.time()
    proc = subprocess.run(_train_cmd(*TINY, "trainer.epochs=1", "logger=wandb", "logger.mode=online",
                                     f"hydra.run.dir={run_dir}"),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.time() - t0 < 60
    assert "online init failed" in (run_dir / "train.log").read_text()
    (run,) = _wandb_runs(run_dir)
    assert glob.glob(str(run / "run-*.wandb"))
    assert read_metrics(run_dir)["status"] == "ok"
