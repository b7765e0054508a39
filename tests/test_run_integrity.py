"""Run integrity (issue 16): a run dir belongs to one config, SIGTERM is survived, under DDP only rank 0 logs."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.checkpoint import load_checkpoint
from engine.preempt import Preempted, Preemption
from tests.helpers import ROOT, read_metrics, run_cli

# sub-second epochs: 8 steps of 64 images 8x8. Width 0.5, not 0.25: torch 2.14.1's CPU backward of a
# channels_last 1x1 stride-2 conv from 4 to 8 channels corrupts the heap on this machine.
TINY = ["experiment=smoke", "trainer.precision=fp32", "data.train_size=576", "data.val_size=64",
        "data.test_size=64", "data.batch_size=64", "data.image_size=8", "model.width=0.5", "trainer.progress=false"]
COMPARED = ("test_acc", "test_loss", "val_acc", "val_loss", "train_loss")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _stderr_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("wandb:")]


def _env() -> dict:
    return {**os.environ, "WANDB_SILENT": "true", **ONE_THREAD}


# ------------------------------------------------------------------------------- one config per dir
@pytest.mark.slow
def test_a_second_sweep_with_another_config_is_refused_and_changes_nothing(tmp_path):
    common = [*TINY, "logger=none", "trainer.epochs=1", "trainer.skip_finished=true", f"hydra.sweep.dir={tmp_path}"]
    run_cli(*common, "model.conv=c3", multirun=True, timeout=240, env=ONE_THREAD)
    job = tmp_path / "0"
    before = {p: p.read_bytes() for p in (job / "metrics.json", job / "checkpoints" / "last.pt")}

    other = run_cli(*common, "model.conv=c2", multirun=True, check=False, timeout=240, env=ONE_THREAD)
    assert other.returncode != 0
    summary = json.loads((tmp_path / "multirun_summary.json").read_text())
    assert summary["failed"] == 1
    error = summary["results"][0]["error"]
    assert "belongs to another config (differs in model.conv)" in error and "delete" in error, error
    assert {p: p.read_bytes() for p in before} == before  # the C3 net's results and checkpoint are intact

    same = run_cli(*common, "model.conv=c3", "trainer.threads=1", multirun=True, timeout=240, env=ONE_THREAD)
    assert "this config finished there before" in (job / "train.log").read_text(), same.stdout
    assert {p: p.read_bytes() for p in before} == before
    assert not (job / "refused.json").exists()


@pytest.mark.slow
def test_resume_with_a_changed_key_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    run_cli(*TINY, "logger=none", "trainer.epochs=1", run_dir=run_dir, timeout=180, env=ONE_THREAD)
    ckpt = run_dir / "checkpoints" / "last.pt"
    before = ckpt.read_bytes(), (run_dir / "metrics.json").read_bytes()

    proc = run_cli(*TINY, "logger=none", "trainer.epochs=1", "optim.lr=0.05", run_dir=run_dir, check=False,
                   timeout=180, env=ONE_THREAD)
    assert proc.returncode == 2
    lines = _stderr_lines(proc)
    assert len(lines) == 1 and lines[0].startswith(f"run dir error: {ckpt} belongs to another config "
                                                    "(differs in optim.lr)"), proc.stderr
    assert "hydra.run.dir=" in lines[0] and f"delete {run_dir}" in lines[0]
    assert "run dir error" not in proc.stdout  # printed once
    assert (ckpt.read_bytes(), (run_dir / "metrics.json").read_bytes()) == before

    # keys that cannot change a result do not count: this resumes (at the end) and finishes ok
    run_cli(*TINY, "logger=none", "trainer.epochs=1", "trainer.threads=1", "trainer.progress=true",
            run_dir=run_dir, timeout=180, env=ONE_THREAD)
    assert read_metrics(run_dir)["status"] == "ok"
    mode = 0o666 & ~_umask()
    assert (ckpt.stat().st_mode & 0o777, (run_dir / "metrics.json").stat().st_mode & 0o777) == (mode, mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------------------- preemption
@pytest.mark.slow
def test_sigterm_checkpoints_mid_epoch_and_the_rerun_matches_an_uninterrupted_run(tmp_path):
    epochs = 4
    args = [*TINY, f"trainer.epochs={epochs}", "logger=wandb"]
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    ref = subprocess.Popen([*cmd, f"hydra.run.dir={ref_dir}"], cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    victim = subprocess.Popen([*cmd, f"hydra.run.dir={run_dir}"], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    ckpt, deadline = run_dir / "checkpoints" / "last.pt", time.time() + 240
    while not ckpt.exists():  # appears after epoch 1
        assert victim.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.01)
    victim.send_signal(signal.SIGTERM)
    _, err = victim.communicate(timeout=120)
    assert victim.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "interrupted: stopped by SIGTERM" in err and "Traceback" not in err
    m = read_metrics(run_dir)
    assert m["status"] == "interrupted" and "rerun the same command" in m["error"]
    state = load_checkpoint(ckpt)
    assert state["epoch"] < epochs and state["config_hash"] == m["config_hash"]
    (first,) = _wandb_runs(run_dir)
    summary = _wandb_summary(first)
    assert summary["state"] != "running" and summary["exit_code"] != 0

    resumed = run_cli(*args, run_dir=run_dir, timeout=240, env=ONE_THREAD)
    where = err.split("stopped by SIGTERM ", 1)[1].split(";", 1)[0]  # e.g. "at epoch 2, step 3"
    assert f"resumed from {ckpt} {where}" in (run_dir / "train.log").read_text(), resumed.stdout  # the same position
    assert ref.wait(timeout=240) == 0
    ref_m, res_m = read_metrics(ref_dir), read_metrics(run_dir)
    assert res_m["status"] == "ok"
    assert {k: res_m[k] for k in COMPARED} == {k: ref_m[k] for k in COMPARED}  # bit-exact
    assert [r["train_loss"] for r in res_m["history"]] == [r["train_loss"] for r in ref_m["history"]]
    assert [(g["from"], g["to"]) for g in res_m["segments"]] == [("start", where), (where, f"after epoch {epochs}")]
    assert [(g["from"], g["to"]) for g in ref_m["segments"]] == [("start", f"after epoch {epochs}")]


# A CUDA generator's state (Philox: seed and offset, 16 bytes) as a GPU lease's checkpoint holds it.
def _cuda_data_state() -> torch.Tensor:
    if torch.cuda.is_available():
        gen = torch.Generator(device="cuda")
        gen.manual_seed(7)
        return gen.get_state()
    return torch.tensor([7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8)


def test_the_data_generator_restores_exactly_on_its_device_type_and_reseeds_across_types():
    from engine.state import rng_state, set_rng_state

    gen = torch.Generator().manual_seed(3)
    torch.randperm(10, generator=gen)
    saved = rng_state(gen)
    same = torch.Generator()
    assert set_rng_state(saved, same) is None and torch.equal(same.get_state(), gen.get_state())
    legacy = torch.Generator()  # a checkpoint from before data_device: restored when the state fits
    assert set_rng_state({k: v for k, v in saved.items() if k != "data_device"}, legacy) is None
    assert torch.equal(legacy.get_state(), gen.get_state())

    from_gpu = {**saved, "data": _cuda_data_state(), "data_device": "cuda"}
    a, b = torch.Generator(), torch.Generator()
    note = set_rng_state(from_gpu, a)
    assert note is not None and "ran on cuda" in note and "trains on cpu" in note
    set_rng_state(from_gpu, b)
    assert torch.equal(a.get_state(), b.get_state())  # the same checkpoint always continues the same way
    assert not torch.equal(a.get_state(), gen.get_state())
    old = {k: v for k, v in from_gpu.items() if k != "data_device"}
    assert "another device type" in set_rng_state(old, torch.Generator())


@pytest.mark.slow
def test_a_checkpoint_from_a_gpu_resumes_on_the_cpu_and_its_record_says_what_was_reseeded(tmp_path):
    args = [*TINY, "trainer.epochs=3", "logger=none"]
    run_dir = tmp_path / "run"
    victim = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt, deadline = run_dir / "checkpoints" / "last.pt", time.time() + 240
    while not ckpt.exists():
        assert victim.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.01)
    victim.send_signal(signal.SIGTERM)
    _, err = victim.communicate(timeout=120)
    assert victim.returncode == 128 + signal.SIGTERM, err[-3000:]
    state = load_checkpoint(ckpt)
    state["rng"].update(data=_cuda_data_state(), data_device="cuda")  # as a GPU lease wrote it
    torch.save(state, ckpt)

    run_cli(*args, run_dir=run_dir, timeout=240, env=ONE_THREAD)
    m = read_metrics(run_dir)
    assert m["status"] == "ok" and len(m["history"]) == 3
    first, last = m["segments"]
    assert first["from"] == "start" and "note" not in first and "data RNG reseeded" in last["note"] and "ran on cuda" in last["note"]
    assert "data RNG reseeded" in (run_dir / "train.log").read_text()


def _wandb_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def _wandb_summary(run: Path) -> dict:
    out = subprocess.run(["wandb", "leet", "inspect", "--summary", "--json", str(run)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return json.loads(out)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_a_signal_outside_the_loop_raises_at_once_and_inside_waits_for_a_safe_point():
    stop = Preemption().install()
    try:
        with pytest.raises(Preempted, match="SIGUSR1"):
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(1)
        stop.signum = None
        with stop.deferred():
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.1)
            assert stop.requested(torch.device("cpu"))  # noted, not raised: the loop checkpoints first
    finally:
        stop.uninstall()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_ctrl_c_checkpoints_at_the_next_step_and_a_second_ctrl_c_stops_at_once():
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (`cmd &` ignores SIGINT)
    stop = Preemption().install()
    try:
        with stop.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            assert stop.requested(torch.device("cpu"))  # noted: the loop writes its exact checkpoint first
            os.kill(os.getpid(), signal.SIGTERM)  # run_grid forwards SIGTERM after a Ctrl-C
            time.sleep(0.1)
            assert stop.signum == signal.SIGINT  # the first signal stays the reason
            with pytest.raises(KeyboardInterrupt, match="Ctrl-C twice") as second:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
            assert not isinstance(second.value, Preempted)  # no exact checkpoint: the epoch one is kept
        with pytest.raises(Preempted, match="SIGINT"):
            stop.stop("at epoch 1, step 2")
    finally:
        stop.uninstall()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, before)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # started with SIGINT ignored (`cmd &` in a script): it stays so
    try:
        ignored = Preemption().install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        ignored.uninstall()
    finally:
        signal.signal(signal.SIGINT, before)


# ---------------------------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_write_one_log_from_rank_0(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           str(ROOT / "train.py"), *TINY, "trainer.epochs=2", "logger=wandb", "trainer.device=cpu",
           f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log_lines = (run_dir / "train.log").read_text().splitlines()
    for epoch in (1, 2):
        assert sum(f"epoch {epoch}/2 " in line for line in log_lines) == 1, log_lines
    assert sum("final:" in line for line in log_lines) == 1
    console = proc.stdout + proc.stderr
    assert console.count("epoch 1/2 ") == 1 and "[rank 1]" not in console
    assert len(_wandb_runs(run_dir)) == 1
    m = read_metrics(run_dir)
    assert m["status"] == "ok" and m["train_size"] == 512 and len(m["history"]) == 2


DDP_STEP = r"""
import os, sys, torch, torch.distributed as td
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1], WORLD_SIZE="2")
from engine import distributed as dist

def main(rank):
    os.environ["RANK"] = os.environ["LOCAL_RANK"] = str(rank)
    td.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    x, y = torch.randn(8, 5), torch.randn(8, 1)
    idx = torch.arange(8)
    mine = dist.shard(idx)
    seen = [torch.zeros(4, dtype=torch.long) for _ in range(2)]
    td.all_gather(seen, mine)
    model = torch.nn.Linear(5, 1)  # no BatchNorm: a DDP step over shards must equal one full-batch step
    single = torch.nn.Linear(5, 1)
    single.load_state_dict(model.state_dict())
    ddp = dist.wrap(model, torch.device("cpu"))
    torch.nn.functional.mse_loss(ddp(x[mine]), y[mine]).backward()
    torch.nn.functional.mse_loss(single(x), y).backward()
    loss_mean, = dist.scaled_all_reduce([torch.tensor(float(rank + 1))])
    if rank == 0:
        print(sorted(torch.cat(seen).tolist()), len(set(seen[0].tolist()) & set(seen[1].tolist())),
              torch.allclose(model.weight.grad, single.weight.grad, atol=1e-6), loss_mean.item())
    td.destroy_process_group()

if __name__ == "__main__":
    torch.multiprocessing.spawn(main, nprocs=2)
"""


@pytest.mark.slow
def test_ddp_ranks_see_disjoint_shards_and_one_step_equals_one_process(tmp_path):
    script = tmp_path / "ddp_step.py"
    script.write_text(DDP_STEP)
    proc = subprocess.run([sys.executable, str(script), str(_free_port())], cwd=ROOT,
                          env={**_env(), "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[-2] == "[0, 1, 2, 3, 4, 5, 6, 7] 0 True 1.5"
