"""scripts/run_grid.py: a grid's jobs run in order through a pool, records make a rerun skip them, failures count."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.grid import cell_models, progress
from experiments.runs import collect
from tests.helpers import ROOT, load_script

TINY_JOB = ("experiment=smoke, data=synthetic, data.train_subset=null, data.train_size=256, data.val_size=64, data.test_size=64, "
            "data.image_size=8, data.batch_size=64, model.width=0.5, trainer.epochs=1")
GRID = f"""profile: quick
sweeps:
  - [{TINY_JOB}, "seed=0,1"]
  - [{TINY_JOB}, model.conv=c9]
"""


def _run_grid(tmp_path, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONVLAB_RECORDS": str(tmp_path / "records")}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "run_grid.py"), str(tmp_path / "tiny.yaml"),
                           "--runs-dir", str(tmp_path / "runs"), *args, "logger=none"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


@pytest.mark.slow  # three tiny training jobs in subprocesses
def test_grid_runs_in_a_pool_records_each_job_and_a_rerun_skips_them(tmp_path):
    (tmp_path / "tiny.yaml").write_text(GRID)
    proc = _run_grid(tmp_path, "--jobs", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the c9 job fails ...
    assert "3 not yet recorded; 2 at a time" in proc.stdout
    assert proc.stdout.count("] ok in ") == 2 and "FAILED (exit 2" in proc.stdout  # ... and the others still ran
    assert "model.conv=c9" in proc.stderr.splitlines()[-1]
    records = [json.loads(p.read_text()) for p in (tmp_path / "records" / "quick" / "smoke").glob("*.json")]
    assert sorted(r["seed"] for r in records if r["status"] == "ok") == [0, 1]
    assert all("logger=none" in r["overrides"] for r in records)
    assert len(list((tmp_path / "runs" / "grid-tiny").glob("*.log"))) == 3  # one console log per job
    ok, failed = collect([tmp_path / "records"])  # the report's progress table reads the same records
    cells = {c["cell"].rsplit(" ", 1)[-1]: c for c in progress(tmp_path / "tiny.yaml", ok + failed)}
    assert cells["trainer.epochs=1"]["ok"] == ["0", "1"] and cells["model.conv=c9"]["failed"] == [None]

    again = _run_grid(tmp_path, "--dry-run")
    assert again.returncode == 0 and "[1/2]" in again.stdout and "2/2 recorded" in again.stdout
    assert "0/1 recorded" in again.stdout  # the failed job is not skipped next time


def test_stop_after_starts_no_job_and_bad_jobs_count_is_refused(tmp_path):
    (tmp_path / "tiny.yaml").write_text(GRID)
    proc = _run_grid(tmp_path, "--stop-after", "0")
    assert proc.returncode == 0 and "3 jobs not started" in proc.stdout
    assert not (tmp_path / "records").exists()
    bad = _run_grid(tmp_path, "--jobs", "0")
    assert bad.returncode != 0 and "--jobs and --threads must be >= 1" in bad.stderr
    unknown = _run_grid(tmp_path, "--profile", "fast")
    assert unknown.returncode == 1 and unknown.stderr.strip().splitlines() == [
        "run_grid: no profile 'fast' (configs/profile); have: paper, quick, standard"]


def test_only_keeps_the_matching_jobs_and_a_bad_or_empty_selection_is_one_line(tmp_path):
    (tmp_path / "tiny.yaml").write_text(GRID)
    proc = _run_grid(tmp_path, "--dry-run", "--only", "seed=1,7")
    assert proc.returncode == 0, proc.stderr
    assert "only seed=1,7): 1 sweeps, 1 jobs, 1 not yet recorded" in proc.stdout  # seed 1 of sweep 1, not c9
    both = _run_grid(tmp_path, "--dry-run", "--only", "model.conv=c9", "--only", "trainer.epochs=1")
    assert both.returncode == 0 and "[1/1] " in both.stdout and "model.conv=c9: 0/1 recorded" in both.stdout
    none = _run_grid(tmp_path, "--dry-run", "--only", "seed=0", "--only", "model.conv=c9")  # each key must match
    assert none.returncode == 1 and none.stderr.strip().splitlines() == [
        "run_grid: no job of grid " + str(tmp_path / "tiny.yaml") + " matches --only seed=0 model.conv=c9"]
    bad = _run_grid(tmp_path, "--dry-run", "--only", "seed")
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        "run_grid: --only 'seed': expected KEY=VALUE[,VALUE...], e.g. model.name=resnet56"]


def test_a_missing_dataset_stops_the_grid_before_any_job(tmp_path):
    """One line naming the data problem, exit 2, no job started and no failed record written."""
    (tmp_path / "tiny.yaml").write_text("profile: quick\nsweeps:\n  - [experiment=smoke, data=image_folder, \"seed=0,1\"]\n")
    proc = _run_grid(tmp_path, f"data.root={tmp_path / 'no-such-dir'}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("run_grid: no job started: "), proc.stderr
    assert "no-such-dir" in lines[0]
    assert not (tmp_path / "records").exists() and not (tmp_path / "runs").exists()


def test_the_estimate_scales_recorded_wall_times_by_depth_and_up_within_one_net():
    """Same model config recorded: its mean wall time; a deeper net of a recorded conv kind: scaled by its MACs;
    another kind of the same net: scaled up by MACs (C5 costs about 2.8x C3), never down (C2); another net: no
    estimate, counted apart. Only runs made wholly on this machine count."""
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    run_grid = load_script("run_grid")
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg, deep, c5, c2, rednet = (run_grid.job_config(job, "standard") for job in (
            ["experiment=even_kernels", "model.name=resnet20", "model.conv=c3"],
            ["experiment=even_kernels", "model.name=resnet56", "model.conv=c3"],
            ["experiment=even_kernels", "model.name=resnet20", "model.conv=c5"],
            ["experiment=even_kernels", "model.name=resnet20", "model.conv=c2"],
            ["experiment=rednet", "model.kernel_size=7"]))
    model = OmegaConf.to_container(cfg.model, resolve=True)
    model["_target_"] = "create_model"  # an older factory path: layout, not the model
    rec = {"config": {"model": model}, "metrics": {"wall_time_s": 7200.0, "macs": 40813184}}
    assert run_grid.estimate_hours([cfg, cfg], [rec], 2) == (2.0, 0)
    k3 = 40813184 - 2 * 131072 - 640  # ResNet-20 C3's k x k conv MACs: all but the two 1x1 shortcuts and the fc
    hours, unknown = run_grid.estimate_hours([c5], [rec], 1)
    assert abs(hours - 2.0 * (40813184 + k3 * (25 - 9) // 9) / 40813184) < 1e-9 and unknown == 0
    assert run_grid.estimate_hours([c2], [rec], 1) == (2.0, 0)  # half of C3's MACs, not half its time
    hours, unknown = run_grid.estimate_hours([deep], [rec], 1)
    assert abs(hours - 2.0 * 125747840 / 40813184) < 1e-9 and unknown == 0  # ResNet-56/20 C3 MACs
    assert run_grid.estimate_hours([rednet, cfg], [rec], 1) == (2.0, 1)
    assert run_grid.estimate_hours([cfg], [], 1) == (0.0, 1)


def test_the_estimate_reads_only_runs_made_wholly_on_this_machine(tmp_path, monkeypatch):
    """A run resumed here from another machine's checkpoint says little about this machine's speed."""
    run_grid = load_script("run_grid")
    monkeypatch.setattr(run_grid, "machine_name", lambda: "HERE (2 cores)")
    folder = tmp_path / "standard" / "even_kernels"
    folder.mkdir(parents=True)
    for i, hardware in enumerate(["HERE (2 cores), 1 thread(s)", "GPU box (16 cores), 1 thread(s), H200"]):
        segments = [{"from": "start", "hardware": hardware, "wall_s": 100.0},
                    {"from": "at epoch 3", "hardware": "HERE (2 cores), 1 thread(s)", "wall_s": 100.0}]
        rec = {"experiment": "even_kernels", "status": "ok", "config_hash": f"h{i}", "config": {},
               "hardware": "HERE (2 cores), 1 thread(s)",
               "segments": segments, "metrics": {"wall_time_s": 100.0}}
        (folder / f"run{i}.json").write_text(json.dumps(rec))
    runs = run_grid.recorded_runs("even_kernels", "standard", tmp_path)
    assert [r["segments"][0]["hardware"] for r in runs] == ["HERE (2 cores), 1 thread(s)"]


@pytest.mark.slow  # one tiny training job and its probes in subprocesses
def test_a_grid_probes_each_finished_net_where_it_was_trained(tmp_path):
    """The grid's probes run on each finished job's checkpoint and leave the net's probe records beside its run
    record: what carries the measurement to other machines, where the checkpoint does not go."""
    (tmp_path / "tiny.yaml").write_text(f"profile: quick\nprobes:\n  smoke: [trained_drift, trained_erosion]\n"
                                        f"sweeps:\n  - [{TINY_JOB}, seed=0]\n")
    proc = _run_grid(tmp_path, "--jobs", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("probe ok in") == 2, proc.stdout
    files = sorted((tmp_path / "records" / "quick" / "smoke").glob("*.json"))
    run = [f for f in files if f.name.count(".") == 1]
    assert len(run) == 1 and [f.name for f in files] == sorted(
        [run[0].name, run[0].name.replace(".json", ".trained_drift.json"), run[0].name.replace(".json", ".trained_erosion.json")])
    digest = json.loads(run[0].read_text())["config_hash"]
    for probe in ("trained_drift", "trained_erosion"):
        rec = json.loads(run[0].with_name(run[0].name.replace(".json", f".{probe}.json")).read_text())
        assert rec["config_hash"] == digest and rec["probe"] == probe and rec["rows"]
    # a net here without one of its probe records (its probe failed, or it finished before the grid had probes):
    # the rerun trains nothing and runs only that probe
    lost = run[0].with_name(run[0].name.replace(".json", ".trained_erosion.json"))
    lost.unlink()
    again = _run_grid(tmp_path, "--jobs", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 not yet recorded" in again.stdout and "1 recorded net(s) here without their probe records, probed first: " \
        f"{TINY_JOB.replace(', ', ' ')} seed=0 (trained_erosion)" in again.stdout, again.stdout
    assert again.stdout.count("probe ok in") == 1 and " ok in " not in again.stdout.replace("probe ok in", "")
    assert json.loads(lost.read_text())["config_hash"] == digest


def test_a_grid_with_an_unknown_probe_starts_no_job(tmp_path):
    (tmp_path / "tiny.yaml").write_text(f"profile: quick\nprobes:\n  smoke: [trained_drift, trained_drfit]\n"
                                        f"sweeps:\n  - [{TINY_JOB}, seed=0]\n")
    proc = _run_grid(tmp_path, "--jobs", "1")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "run_grid: no job started: the grid's probes name trained_drfit, which is no probe experiment "
        "(configs/experiment/<name>.yaml with task: probe)"], proc.stderr
    assert not (tmp_path / "records").exists()


def test_a_finished_job_is_followed_by_its_probes_and_a_failed_probe_counts(capsys, monkeypatch):
    """A failed probe is printed and returned as a failure; a failed job's net is not probed."""
    import argparse

    run_grid = load_script("run_grid")
    ran = []
    codes = {"a": 0, "drift": 0, "erosion": 3, "b": 1}
    monkeypatch.setattr(run_grid, "run_job",
                        lambda cmd, run_dir, stop, records_dir=None: (ran.append(run_dir.name), (codes[run_dir.name], 0.1))[1])
    probes = [(["probe"], Path("drift")), (["probe"], Path("erosion"))]
    todo = [(["seed=0"], Path("a"), lambda: False, probes), (["seed=1"], Path("b"), lambda: False, probes)]
    failed = run_grid.run_pool(todo, "quick", [], argparse.Namespace(jobs=1, stop_after=None, threads=1, extra=[]))
    assert ran == ["a", "drift", "erosion", "b"]
    assert failed == ["probe erosion of seed=0", "seed=1"]
    assert "probe FAILED (exit 3, see erosion.log)" in capsys.readouterr().out


def test_a_recorded_net_without_its_probe_records_gets_only_its_probes(capsys, monkeypatch):
    """A ``train=False`` entry (a done job whose net is here, lacking probe records) runs its probes and no job."""
    import argparse

    run_grid = load_script("run_grid")
    ran = []
    monkeypatch.setattr(run_grid, "run_job", lambda cmd, run_dir, stop, records_dir=None: (ran.append(run_dir.name), (0, 0.1))[1])
    todo = [run_grid.Todo(["seed=0"], Path("a"), lambda: True, [(["probe"], Path("erosion"))], train=False),
            run_grid.Todo(["seed=1"], Path("b"), lambda: False, [(["probe"], Path("drift"))])]
    assert run_grid.run_pool(todo, "quick", [], argparse.Namespace(jobs=1, stop_after=None, threads=1, extra=[])) == []
    assert ran == ["erosion", "b", "drift"]
    out = capsys.readouterr().out
    assert "[1/2] probe ok in 0.1 min: erosion of seed=0" in out and "skipped" not in out


@pytest.mark.slow  # one tiny training job in a subprocess
def test_an_unrecorded_grid_keeps_checkpoints_writes_no_record_and_counts_finished_nets(tmp_path):
    """``record: false`` (probe_nets): the job runs although its config is recorded, leaves a checkpoint and no
    record, and then counts as done, for this grid and for any other that needs the same net of the same
    experiment; ``--profile`` puts it in grid-<name>-<profile>."""
    job = f"[{TINY_JOB}, seed=0]"
    (tmp_path / "tiny.yaml").write_text(f"profile: quick\nsweeps:\n  - {job}\n")
    assert _run_grid(tmp_path, "trainer.checkpoint=false").returncode == 0  # recorded, no net kept
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONVLAB_RECORDS": str(tmp_path / "records")}

    def nets(name, *a, sweep=job):
        (tmp_path / f"{name}.yaml").write_text(f"profile: standard\nrecord: false\nsweeps:\n  - {sweep}\n")
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "run_grid.py"), str(tmp_path / f"{name}.yaml"),
                               "--runs-dir", str(tmp_path / "runs"), "--profile", "quick", *a, "logger=none"],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)

    proc = nets("nets")
    assert proc.returncode == 0 and "(profile quick)" in proc.stdout and "0/1 finished" in proc.stdout, proc.stdout
    run_dirs = [p for p in (tmp_path / "runs" / "grid-nets-quick").iterdir() if p.is_dir()]
    assert len(run_dirs) == 1 and (run_dirs[0] / "checkpoints" / "last.pt").exists()
    assert json.loads((run_dirs[0] / "metrics.json").read_text())["status"] == "ok"
    assert len(list((tmp_path / "records").rglob("*.json"))) == 1  # only the recorded grid's record
    for name in ("nets", "other"):  # the finished net counts for this grid and for another needing it
        again = nets(name, "--dry-run")
        assert again.returncode == 0 and "1/1 finished" in again.stdout and "0 not yet finished" in again.stdout
    renamed = nets("renamed", "--dry-run", sweep=f"[{TINY_JOB}, seed=0, experiment_name=renamed]")
    assert "0/1 finished" in renamed.stdout  # same hash (names are not hashed), but not a net of that experiment


def test_the_pool_asks_again_before_each_job_and_skips_one_done_meanwhile(capsys, monkeypatch):
    """Two machines filling one records dir: a job recorded after the grid was planned does not run again."""
    import argparse

    run_grid = load_script("run_grid")
    ran = []
    monkeypatch.setattr(run_grid, "run_job", lambda cmd, run_dir, stop, records_dir=None: (ran.append(run_dir.name), (0, 0.1))[1])
    todo = [(["seed=0"], Path("a"), lambda: False, []), (["seed=1"], Path("b"), lambda: True, []),
            (["seed=2"], Path("c"), lambda: False, [])]
    args = argparse.Namespace(jobs=1, stop_after=None, threads=1, extra=[])
    assert run_grid.run_pool(todo, "quick", [], args) == []
    assert ran == ["a", "c"]
    assert "[2/3] skipped, done meanwhile: seed=1" in capsys.readouterr().out


def test_a_job_stopped_by_a_signal_is_not_failed_and_the_pool_starts_no_other(capsys, monkeypatch):
    """Ctrl-C reaches the job too: it checkpoints and exits 130. The grid starts nothing more and records no failure."""
    import argparse
    import signal

    run_grid = load_script("run_grid")
    ran = []
    codes = {"a": 0, "b": 128 + signal.SIGINT, "c": 0}
    monkeypatch.setattr(run_grid, "run_job", lambda cmd, run_dir, stop, records_dir=None: (ran.append(run_dir.name), (codes[run_dir.name], 0.1))[1])
    todo = [([f"seed={i}"], Path(n), lambda: False, []) for i, n in enumerate("abc")]
    stop = run_grid.Stop()
    assert run_grid.run_pool(todo, "quick", [], argparse.Namespace(jobs=1, stop_after=None, threads=1, extra=[]), stop) == []
    assert ran == ["a", "b"] and stop.signum == signal.SIGINT
    out = capsys.readouterr().out
    assert "[2/3] interrupted (checkpointed)" in out and "stopped by SIGINT: 1 jobs not started" in out


def test_a_signal_to_the_grid_sends_its_running_jobs_sigterm(tmp_path):
    import signal
    import threading

    run_grid = load_script("run_grid")
    stop, result = run_grid.Stop(), []
    job = threading.Thread(target=lambda: result.append(run_grid.run_job(
        [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "job", stop)))
    job.start()
    deadline = time.time() + 30
    while not stop.running:
        assert time.time() < deadline
        time.sleep(0.01)
    stop._handle(signal.SIGINT, None)  # what Ctrl-C to run_grid runs
    job.join(timeout=30)
    (code, minutes), = result
    assert code == -signal.SIGTERM and minutes < 0.5 and stop.signum == signal.SIGINT and not stop.running


def test_a_job_started_as_the_signal_arrives_still_gets_its_sigterm(tmp_path):
    """A worker checked for a signal, then the signal came before its job's process was registered: the
    handler's list missed it, so registering it sends the SIGTERM."""
    import signal

    run_grid = load_script("run_grid")
    stop = run_grid.Stop()
    stop._handle(signal.SIGTERM, None)  # the grid is stopped while a worker is between its check and Popen
    code, minutes = run_grid.run_job([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "job", stop)
    assert code == -signal.SIGTERM and minutes < 0.5 and not stop.running


def test_progress_merges_a_cells_seeds_across_sweeps_and_tells_ok_from_failed_runs(tmp_path):
    (tmp_path / "g.yaml").write_text('profile: standard\nsweeps:\n  - [experiment=a, "x=1,2", "seed=0,1"]\n'
                                     '  - [experiment=a, "x=1,2", seed=2]\n')
    row = lambda overrides, status="ok", profile="standard": {  # noqa: E731
        "overrides": overrides, "status": status, "profile": profile}
    rows = progress(tmp_path / "g.yaml", [
        row("experiment=a x=1 seed=0 profile=standard trainer.threads=1"),  # extra overrides still match
        row("experiment=a x=1 seed=1", status="failed"), row("experiment=a x=1 seed=1"),  # a rerun that succeeded
        row("experiment=a x=2 seed=0", status="failed"),
        row("experiment=a x=2 seed=1", profile="quick"),  # another profile's run is not this grid's
        row("experiment=a x=2 seed=12")])  # seed=1 is not seed=12
    assert [r["cell"] for r in rows] == ["experiment=a x=1", "experiment=a x=2"]
    assert rows[0]["planned"] == ["0", "1", "2"] and rows[0]["ok"] == ["0", "1"] and rows[0]["failed"] == []
    assert rows[1]["ok"] == [] and rows[1]["failed"] == ["0"]


def test_cell_models_gives_each_distinct_net_of_a_grid_once_labelled_by_its_first_cell(tmp_path):
    (tmp_path / "g.yaml").write_text('profile: quick\nsweeps:\n'
                                     '  - [experiment=blurpool, "model.filt_size=1,3", "data.augment=true,false", '
                                     '"seed=0,1"]\n  - [experiment=rednet, model.kernel_size=7, seed=0]\n')
    nets = cell_models(tmp_path / "g.yaml")
    # augmentation is not part of the net: four blurpool cells, two nets; seeds never make a cell
    assert [cell for cell, _ in nets] == ["experiment=blurpool model.filt_size=1 data.augment=true",
                                          "experiment=blurpool model.filt_size=3 data.augment=true",
                                          "experiment=rednet model.kernel_size=7"]
    assert [(m.name, m.get("downsample"), m.get("filt_size"), m.get("kernel_size")) for _, m in nets] == [
        ("resnet20", "blurpool", 1, None), ("resnet20", "blurpool", 3, None), ("rednet26", None, None, 7)]


@pytest.mark.slow  # composes the 75 configs of the standard grid
def test_progress_agrees_with_the_config_hash_rule_on_the_committed_standard_records():
    """The report matches records to jobs by overrides; run_grid skips jobs by config hash. On the committed
    records both must call the same jobs recorded."""
    from hydra import initialize_config_dir

    from engine.records import config_hash
    from experiments.grid import GRIDS, grid_jobs

    run_grid = load_script("run_grid")
    records = ROOT / "results" / "records"
    ok, failed = collect([records])
    by_overrides = sum(len(c["ok"]) for c in progress(GRIDS / "standard.yaml", ok + failed))
    hashes = {r["config_hash"] for r in ok if r["profile"] == "standard"}
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        jobs = [job for *_, job in grid_jobs(GRIDS / "standard.yaml")]
        by_hash = sum(config_hash(run_grid.job_config(job, "standard")) in hashes for job in jobs)
    assert by_overrides == by_hash > 0
