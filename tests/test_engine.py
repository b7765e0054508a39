"""The training engine (issue 13): the real ``fit`` learns, the model is built once, data facts and batch sizes
are checked, expected failures are one line with exit code 2, and the loop runs on CUDA where there is one."""
from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from engine.data import RawData, synthetic
from engine.validate import ConfigError, check_data_facts, validate_config
from tests.helpers import ROOT, run_cli

# 8 steps of 64 8x8 images per epoch (width 0.5: see tests/test_run_integrity.py on width 0.25)
TINY = ["experiment=smoke", "logger=none", "trainer.precision=fp32", "data.train_size=576", "data.val_size=64",
        "data.test_size=256", "data.batch_size=64", "data.image_size=8", "model.width=0.5", "trainer.progress=false",
        "trainer.checkpoint=false", "trainer.record=false"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _cfg(*overrides: str, out_dir=None):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "configs")):
        cfg = compose("train", overrides=[*TINY, *overrides])
    if out_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(out_dir)
    return cfg


def _first_stderr_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("wandb:")]
    return lines[0] if lines else ""


# ------------------------------------------------------------------------------------------ learning
def test_fit_learns_above_chance_and_trains_the_validated_model(tmp_path, monkeypatch):
    import models
    from engine.job import train

    built = []
    real = models.create_model
    monkeypatch.setattr(models, "create_model", lambda *a, **k: built.append(a) or real(*a, **k))
    metrics = train(_cfg("trainer.epochs=6", out_dir=tmp_path))
    assert metrics["status"] == "ok"
    assert metrics["test_acc"] > 30, metrics["test_acc"]  # 10 classes, 256 test images: chance is 10 +- 2 %
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]
    assert len(built) == 1  # validation built it; fit trained that very model


def test_train_subset_is_stratified(monkeypatch):
    from engine import loop

    raw = synthetic(image_size=8, channels=3, num_classes=10, train_size=1000, test_size=10, seed=0)
    order = torch.argsort(raw.train_y, stable=True)  # sorted by class, like an image folder
    by_class = RawData(raw.train_x[order], raw.train_y[order], raw.test_x, raw.test_y, raw.classes)
    monkeypatch.setattr(loop, "instantiate", lambda node: by_class)
    cfg = _cfg("data.train_size=1000", "data.val_size=100", "data.train_subset=200")
    splits = loop.setup_data(cfg, torch.device("cpu"))
    counts = torch.bincount(splits.train_y, minlength=10)
    assert len(splits.train_y) == 200 and counts.min() >= 18 and counts.max() <= 22, counts.tolist()


# ------------------------------------------------------------------------------------ config checks
def test_data_facts_are_checked_against_the_loaded_data():
    cfg = _cfg()
    raw = synthetic(image_size=8, channels=3, num_classes=10, train_size=20, test_size=10, seed=0)
    check_data_facts(cfg, raw)
    for key, value, loaded in (("num_classes", 5, 5), ("channels", 1, 1), ("image_size", 10, 10)):
        other = synthetic(**{"image_size": 8, "channels": 3, "num_classes": 10, key: value},
                          train_size=20, test_size=10, seed=0)
        with pytest.raises(ConfigError, match=rf"data.{key}=\d+ is invalid: the loaded data=synthetic has {loaded} "):
            check_data_facts(cfg, other)


@pytest.mark.slow
def test_a_class_count_mismatch_is_a_one_line_config_error(tmp_path):
    proc = run_cli(*TINY, "data.source.num_classes=5", run_dir=tmp_path / "run", check=False, timeout=180,
                   env=ONE_THREAD)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert _first_stderr_line(proc).startswith("config error: data.num_classes=10 is invalid: the loaded "
                                               "data=synthetic has 5")


@pytest.mark.parametrize("world,batch,ok", [(2, 64, True), (3, 64, False), (4, 6, False)])
def test_batch_size_must_split_over_the_processes(monkeypatch, world, batch, ok):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    cfg = _cfg(f"data.batch_size={batch}")
    if ok:
        validate_config(cfg)
        return
    with pytest.raises(ConfigError, match=rf"data.batch_size={batch} is invalid: must be divisible by the {world} "):
        validate_config(cfg)


@pytest.mark.slow
def test_missing_data_is_a_data_error_with_exit_code_2(tmp_path):
    proc = run_cli("data=image_folder", f"data.root={tmp_path}/nonexistent", "logger=none", "trainer.epochs=1",
                   run_dir=tmp_path / "run", check=False, timeout=180, env=ONE_THREAD)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert _first_stderr_line(proc).startswith("data error: ") and "nonexistent" in _first_stderr_line(proc)
    assert "Traceback" not in proc.stderr + proc.stdout and "data error" not in proc.stdout


@pytest.mark.slow
def test_oct_resnet_trains_on_28x28_single_channel_images(tmp_path):
    run_cli(*TINY, "model=oct_resnet20", "data.image_size=28", "data.channels=1", "trainer.epochs=1",
            "trainer.max_steps_per_epoch=2", run_dir=tmp_path / "run", timeout=240, env=ONE_THREAD)


# ------------------------------------------------------------------------------------------ logging
def test_epoch_metrics_are_logged_under_single_prefixed_keys():
    from engine.loop import log_epoch

    logged = []

    class Recorder:
        def log_metrics(self, metrics, step=None):
            logged.append((metrics, step))

    row = {"epoch": 3, "train_loss": 1.0, "train_acc": 50.0, "val_loss": 1.1, "val_acc": 45.0, "lr": 0.1,
           "epoch_time_s": 2.0, "throughput_img_s": 100.0}
    log_epoch(Recorder(), row, epochs=5)
    (metrics, step), = logged
    assert step == 3 and set(metrics) == {"train/loss", "train/acc", "val_loss", "val_acc", "lr", "epoch_time_s",
                                          "throughput_img_s"}


@pytest.mark.parametrize("name,conv,expected", [("resnet20-seed0", "c2", "resnet20-c2-seed0"),
                                                ("resnet20-c2-seed0", "c2", "resnet20-c2-seed0"),
                                                ("rednet26-seed1", None, "rednet26-seed1")])
def test_default_wandb_run_names_carry_the_conv_kind(name, conv, expected):
    from engine.logger import run_name

    assert run_name(name, conv) == expected


# --------------------------------------------------------------------------------------------- CUDA
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fit_learns_on_cuda(tmp_path, precision):
    from engine.job import train

    metrics = train(_cfg("trainer.epochs=6", "trainer.device=cuda", f"trainer.precision={precision}",
                         out_dir=tmp_path))
    # the CPU test's budget and bar (6 epochs, > 30 %; chance 10 +- 2 %): 4 epochs reach only about 35 %
    assert metrics["status"] == "ok" and metrics["device"].startswith("cuda") and metrics["test_acc"] > 30


@cuda
@pytest.mark.parametrize("kind", ["c2", "c2sp", "c3", "c4", "c4sp", "c5", "involution"])
def test_layers_give_the_same_output_on_cuda_and_cpu(kind, exact_fp32_cuda):
    from models.layers import create_conv

    torch.manual_seed(0)
    layer = create_conv(kind, 16, 16, stride=2).eval()
    x = torch.randn(2, 16, 16, 16)  # even: a stride-2 involution, like the reference, needs H and W divisible by 2
    with torch.no_grad():
        expected = layer(x)
        got = layer.cuda()(x.cuda()).cpu()
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_a_probe_logs_its_own_numbers_as_final():
    from train import _probe_keys

    metrics = {"max_abs_err": 0.5, "n_cases": 12, "status": "ok", "seed": 0, "wall_time_s": 3.2,
               "git_dirty": False, "hardware": "cpu", "config_hash": "abc"}
    assert _probe_keys(metrics) == ["max_abs_err", "n_cases"]
