"""Beyond one process: DDP through torchrun (gloo, 2 CPU processes) and the submitit launcher path."""
from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, read_metrics, run_cli


@pytest.mark.slow
def test_torchrun_ddp_two_cpu_processes_rank0_logs(tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(ROOT / "train.py"), "experiment=smoke", "trainer.device=cpu", "logger=wandb",
                           f"hydra.run.dir={run}"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = read_metrics(run)
    assert m["status"] == "ok" and 0 <= m["test_acc"] <= 100
    # only rank 0 logs: one epoch line per epoch and one wandb run (both ranks train: the run completes under DDP)
    assert (proc.stdout + proc.stderr).count("epoch 2/2") == 1
    assert len(glob.glob(str(run / "wandb" / "offline-run-*"))) == 1


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path):
    run_cli("hydra/launcher=submitit_local", "experiment=smoke", "logger=none", "seed=0,1",
            f"hydra.sweep.dir={tmp_path}", multirun=True, env={"OMP_NUM_THREADS": "1"})
    assert sorted(read_metrics(tmp_path / str(i))["seed"] for i in range(2)) == [0, 1]


def test_launcher_configs_compose():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "configs")):
        slurm = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
        par = compose("train", overrides=["hydra/launcher=parallel"], return_hydra_config=True)
    assert "SlurmLauncher" in slurm.hydra.launcher._target_ and slurm.hydra.launcher.gpus_per_node == 1
    assert "JoblibLauncher" in par.hydra.launcher._target_ and par.hydra.launcher.n_jobs == 2
