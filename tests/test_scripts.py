"""Set-up and helper commands as a new user runs them: data preparation, wandb sync, the model benchmark."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.helpers import ROOT, load_script


def _machine_paths(generated: bool) -> list[str]:
    """``file:line`` of tracked files naming an absolute machine path; ``generated``: under results/ only."""
    machine = re.compile("/" + "(work|root|home)/")  # split so this file does not match itself
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    names = [n for n in tracked.split() if n.startswith("results/") == generated and (ROOT / n).is_file()]
    return [f"{name}:{i}" for name in names
            for i, line in enumerate((ROOT / name).read_text(errors="ignore").splitlines(), 1) if machine.search(line)]


def test_no_absolute_machine_path_in_the_sources():
    assert not _machine_paths(generated=False)


def test_no_absolute_machine_path_in_the_generated_results():
    assert not _machine_paths(generated=True)


def _fake_checkout(tmp_path: Path) -> Path:
    """A checkout holding only the prepare script, with a tiny CIFAR-style tarball in ../shared/data."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "prepare_cifar10_jpeg.sh", repo / "scripts")
    tree = tmp_path / "tree"
    for split in ("train", "test"):
        (tree / split / "cat").mkdir(parents=True)
        (tree / split / "cat" / "0.jpg").write_bytes(b"jpeg")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    with tarfile.open(tmp_path / "shared" / "data" / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(tree / split, arcname=split)
    return repo


def test_prepare_cifar10_jpeg_finds_the_tarball_next_to_the_checkout(tmp_path):
    repo = _fake_checkout(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "CIFAR10_JPEG_TARBALL"}
    proc = subprocess.run(["bash", str(repo / "scripts" / "prepare_cifar10_jpeg.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (repo / "data" / "cifar10-jpeg" / "test" / "cat" / "0.jpg").read_bytes() == b"jpeg"


def test_prepare_cifar10_jpeg_without_a_tarball_exits_2_naming_it(tmp_path):
    repo = _fake_checkout(tmp_path)
    env = {**os.environ, "CIFAR10_JPEG_TARBALL": str(tmp_path / "missing.tar.gz")}
    proc = subprocess.run(["bash", str(repo / "scripts" / "prepare_cifar10_jpeg.sh")], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "missing.tar.gz" in proc.stderr.splitlines()[0]
    assert not (repo / "data").exists()


def test_readme_wandb_sync_command_finds_every_offline_run(tmp_path):
    """The README's command, run in a fake checkout with a stand-in `wandb` that records its arguments."""
    (command,) = [line.split("#")[0].strip() for line in (ROOT / "README.md").read_text().splitlines()
                  if "wandb sync" in line and line.startswith("find ")]
    runs = [tmp_path / "outputs/smoke/2026-01-01_00-00-00/wandb/offline-run-20260101_000000-abc",
            tmp_path / "multirun/blurpool/2026-01-01_00-00-00/3/wandb/offline-run-20260101_000001-def"]
    for run in runs:
        (run / "files").mkdir(parents=True)
    (tmp_path / "outputs/smoke/2026-01-01_00-00-00/wandb/latest-run").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "wandb").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done >> "$WANDB_ARGS"\n')
    (bin_dir / "wandb").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "WANDB_ARGS": str(tmp_path / "args")}
    subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, check=True)
    args = (tmp_path / "args").read_text().split()
    assert args[0] == "sync" and sorted((tmp_path / a).resolve() for a in args[1:]) == sorted(runs)


@pytest.mark.slow  # times four ResNet-20 variants
def test_benchmark_models_out_writes_csv_and_md_with_the_thread_count(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark_models.py"), "--rounds", "1",
                           "--batch", "2", "--groups", "blurpool", "--precision", "fp32", "--threads", "1",
                           "--out", str(tmp_path)], capture_output=True, text=True, check=True)
    md = (tmp_path / "model_speed.md").read_text()
    assert "1 thread(s)" in md.splitlines()[0] and "1 thread(s)" in proc.stdout
    rows = [line for line in md.splitlines() if line.startswith("| blurpool")]
    assert len(rows) == 4 == len((tmp_path / "model_speed.csv").read_text().splitlines()) - 1


def _profile_step(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "profile_step.py"), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_profile_step_ranks_a_c2sp_nets_ops_and_its_symmetric_pad_shows(tmp_path):
    trace = tmp_path / "trace.json"
    proc = _profile_step("resnet20", "conv=c2sp", "width=0.5", "--batch", "4", "--steps", "1", "--warmup", "0",
                         "--rows", "40", "--trace", str(trace))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resnet20 conv=c2sp width=0.5:" in proc.stdout and "CPU, 1 thread(s), batch 4, 1 steps" in proc.stdout
    assert "Self CPU time total" in proc.stdout and "convolution_backward" in proc.stdout
    assert "_SymmetricPad" in proc.stdout  # the fused pad of the CPU path is one of the step's ops
    assert re.search(r"^leaf aten ops per step: [1-9]\d*$", proc.stdout, re.M)
    assert json.loads(trace.read_text())["traceEvents"]


def test_profile_step_counts_the_ops_a_step_launches():
    """The fused CPU symmetric pad zeroes and copies per group: a C2sp step runs more ops than C2's, same MACs."""
    import torch

    from models import create_model

    ps = load_script("profile_step")
    counts = {}
    for conv in ("c2", "c2sp"):
        torch.manual_seed(0)
        prof = ps.profile_step(create_model("resnet20", conv=conv, width=0.25), torch.device("cpu"), "fp32", 2, 2, 1)
        counts[conv] = ps.ops_per_step(prof, 2)
    assert counts["c2"][0] == counts["c2sp"][0] == "leaf aten ops"
    assert counts["c2sp"][1] > counts["c2"][1] + 19 * 4  # 19 even convs, at least 4 more ops each


def test_profile_step_refuses_bad_model_arguments_in_one_line():
    for args, words in ((["resnet99"], "unknown model 'resnet99'"), (["resnet20", "conv"], "key=value"),
                        (["resnet20", "foo=1"], "foo")):
        proc = _profile_step(*args)
        assert proc.returncode != 0 and words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, args


@pytest.mark.slow  # composes the tune grid's six configs and times their net
def test_benchmark_models_grid_group_times_each_distinct_net_of_a_grid_once(tmp_path):
    args = [sys.executable, str(ROOT / "scripts" / "benchmark_models.py"), "--rounds", "1", "--batch", "2",
            "--precision", "fp32", "--out", str(tmp_path), "--groups"]
    subprocess.run([*args, "grid:tune"], capture_output=True, text=True, check=True)
    rows = (tmp_path / "model_speed.csv").read_text().splitlines()[1:]
    # six cells (lr x weight decay), one net: ResNet-20 C3, labelled by the first cell
    assert len(rows) == 1 and rows[0].startswith("grid:tune,experiment=recipe_tuning optim.lr=0.1 ")
    bad = subprocess.run([*args, "grid:nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no group 'grid:nope'" in bad.stderr.strip().splitlines()[-1]


@pytest.mark.slow  # compiles ResNet-20 (forward and backward) once
def test_benchmark_models_compile_times_each_net_eager_and_compiled(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark_models.py"), "--rounds", "2", "--batch",
                           "2", "--precision", "fp32", "--out", str(tmp_path), "--groups", "grid:tune", "--compile"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [row] = csv.DictReader(open(tmp_path / "model_speed.csv"))
    speedup = float(row["compile_speedup"])
    assert speedup > 0 and float(row["compiled_img_s"]) == pytest.approx(float(row["img_s"]) * speedup, rel=0.05)
    assert "eager and torch.compile" in (tmp_path / "model_speed.md").read_text().splitlines()[0]


def _record(path: Path, profile: str, epochs: int, vals: list[float], test_acc: float,
            experiment: str = "even_kernels", conv: str = "c3") -> Path:
    rec = {"schema": 1, "status": "ok", "config_hash": path.stem[-12:], "experiment": experiment, "profile": profile,
           "variant": "resnet20-c3", "seed": 0, "overrides": [f"profile={profile}"],
           "metrics": {"test_acc": test_acc, "val_acc": vals[-1], "wall_time_s": 60.0 * epochs,
                       "train_throughput_img_s": 500.0},
           "history": [{"epoch": i + 1, "val_acc": v, "epoch_time_s": 60.0, "throughput_img_s": 500.0}
                       for i, v in enumerate(vals)],
           "git": {"commit": "abc", "dirty": False}, "hardware": "test box", "date": "2026-11-26 00:00:00",
           "config": {"task": "train", "model": {"name": "resnet20", "conv": conv}, "data": {"name": "image_folder"},
                      "trainer": {"epochs": epochs}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return path


def test_time_to_accuracy_targets_the_ceiling_minus_1_5_pp(tmp_path):
    records = tmp_path / "records"
    _record(records / "paper" / "ceiling" / "resnet20-c3-seed0-aaaaaaaaaaaa.json", "paper", 4,
            [60.0, 80.0, 90.0, 91.0], 90.5, experiment="ceiling")
    _record(records / "paper" / "even_kernels" / "resnet20-c3-seed0-cccccccccccc.json", "paper", 300,
            [99.0], 99.0)  # a paper-profile run that is not the ceiling experiment: never the ceiling
    run = _record(records / "standard" / "even_kernels" / "resnet20-c3-seed0-bbbbbbbbbbbb.json", "standard", 3,
                  [70.0, 89.5, 89.0], 88.0)
    script = [sys.executable, str(ROOT / "scripts" / "time_to_accuracy.py"), str(run)]
    out = subprocess.run([*script, "--ceiling", "--records-dir", str(records)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ceiling: 1 run(s), 4 epochs, val_acc 91.00 %, test_acc 90.50 %" in out.stdout
    assert "target val_acc >= 89.50 %: reached at epoch 2 after 2.0 min of training" in out.stdout
    none = subprocess.run([*script, "--ceiling", "--records-dir", str(tmp_path / "empty")], capture_output=True, text=True)
    assert none.returncode == 1 and "no ceiling record" in none.stderr and "run_grid.py ceiling" in none.stderr
    c2 = _record(records / "standard" / "even_kernels" / "resnet20-c2-seed0-dddddddddddd.json", "standard", 3,
                 [70.0], 80.0, conv="c2")
    other = subprocess.run([script[0], script[1], str(c2), "--ceiling", "--records-dir", str(records)],
                           capture_output=True, text=True)
    assert other.returncode == 1 and "is resnet20-c2" in other.stderr


@pytest.mark.slow  # the whole report: every claim's tables and figures
def test_the_committed_results_md_is_what_the_committed_records_generate(tmp_path):
    """README's one command regenerates RESULTS.md without retraining; a record committed without rerunning the
    report (or a hand edit) fails here."""
    out = tmp_path / "results"
    shutil.copytree(ROOT / "results", out, ignore=shutil.ignore_patterns("records"))  # probes are read from --out
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    proc = subprocess.run([sys.executable, "scripts/report.py", str(ROOT / "results" / "records"), "--out", str(out),
                           "--results-md", str(tmp_path / "RESULTS.md"), "--readme", str(tmp_path / "README.md")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "README.md").read_text() == (ROOT / "README.md").read_text(), "README's verdict table is stale"
    assert (tmp_path / "RESULTS.md").read_text() == (ROOT / "RESULTS.md").read_text(), \
        "RESULTS.md is stale: python scripts/report.py --results-md RESULTS.md --readme README.md"
