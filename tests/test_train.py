"""Foundation: the training loop on synthetic data and the CLI end to end."""
from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from engine.loop import seed_everything
from tests.helpers import ROOT, read_metrics, run_cli

CONFIGS = ROOT / "configs"
SMOKE = ["experiment=smoke", "logger=none"]


def _compose(overrides):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        cfg = compose("train", overrides=overrides, return_hydra_config=False)
    return cfg


@pytest.mark.slow
def test_training_lowers_the_loss_on_synthetic_data():
    from hydra.utils import instantiate

    from engine.augment import BatchAugment
    from engine.data import channel_stats, synthetic
    from engine.inference import Batches, autocast
    from engine.optim import param_groups

    seed_everything(0)
    raw = synthetic(image_size=16, channels=3, num_classes=4, train_size=512, test_size=8, seed=0)
    cfg = _compose(["data=synthetic", "model.width=0.5", "data.num_classes=4"])
    model = instantiate(cfg.model)
    opt = instantiate(cfg.optim)(param_groups(model, 5e-4))
    prep = Batches(*channel_stats(raw.train_x), torch.device("cpu"), True)
    aug, gen = BatchAugment(False), torch.Generator().manual_seed(0)
    x, y = raw.train_x[:256], raw.train_y[:256]

    def loss_now():
        model.eval()
        with torch.no_grad(), autocast(torch.device("cpu"), "bf16"):
            return torch.nn.functional.cross_entropy(model(prep(x)).float(), y).item()

    before = loss_now()
    model.train()
    for _ in range(15):
        for i in range(0, 256, 64):
            with autocast(torch.device("cpu"), "bf16"):
                loss = torch.nn.functional.cross_entropy(model(prep(x[i:i + 64], aug, gen)).float(), y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert loss_now() < 0.7 * before


def test_no_weight_decay_on_bn_and_bias():
    from engine.optim import param_groups
    from models import create_model

    model = create_model("resnet20", width=0.5)
    decay, no_decay = param_groups(model, 1e-4)
    bn_ids = {id(p) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
    assert bn_ids and bn_ids <= {id(p) for p in no_decay["params"]}
    assert all(p.ndim > 1 for p in decay["params"]) and no_decay["weight_decay"] == 0


@pytest.mark.parametrize("sched", ["onecycle", "cosine", "step"])
def test_schedules_cover_the_whole_run(sched):
    cfg = _compose([f"sched={sched}", "optim.lr=0.1"])
    from hydra.utils import instantiate

    p = torch.nn.Parameter(torch.zeros(1))
    opt = instantiate(cfg.optim)([p])
    s = instantiate(cfg.sched)(opt, total_steps=100, steps_per_epoch=10)
    lrs = []
    for _ in range(100):
        opt.step()
        s.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert max(lrs) <= 0.1 + 1e-9 and lrs[-1] < 0.02 and max(lrs) > 0.05


@pytest.mark.slow
def test_smoke_end_to_end(tmp_path):
    run = tmp_path / "run"
    run_cli("experiment=smoke", run_dir=run)
    m = read_metrics(run)
    for key in ("test_acc", "test_loss", "val_acc", "params", "macs", "epochs", "seed", "train_time_s",
                "train_throughput_img_s", "data", "model"):
        assert key in m, key
    assert m["status"] == "ok" and m["data"] == "synthetic" and m["epochs"] == 2 and m["params"] > 0
    assert (run / "checkpoints" / "last.pt").is_file()
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "train.log").is_file()
    assert glob.glob(str(run / "wandb" / "offline-run-*" / "run-*.wandb"))


@pytest.mark.slow
def test_multirun_makes_one_wandb_run_per_job(tmp_path):
    run_cli("experiment=smoke", "seed=1,2", f"hydra.sweep.dir={tmp_path}", multirun=True)
    files = sorted(glob.glob(str(tmp_path / "*" / "wandb" / "offline-run-*" / "run-*.wandb")))
    assert len(files) == 2
    assert len({Path(f).parent.name for f in files}) == 2
    seeds = sorted(read_metrics(tmp_path / str(i))["seed"] for i in range(2))
    assert seeds == [1, 2]


@pytest.mark.slow
def test_same_seed_same_result(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        run_cli(*SMOKE, "trainer.checkpoint=false", run_dir=d)
    ma, mb = read_metrics(a), read_metrics(b)
    assert ma["test_acc"] == mb["test_acc"] and ma["test_loss"] == mb["test_loss"]


@pytest.mark.slow
def test_missing_data_fails_with_one_clear_message(tmp_path):
    proc = run_cli("data=cifar10", f"data.root={tmp_path}/nowhere", "logger=none", "trainer.epochs=1",
                   "data.source.download=false", run_dir=tmp_path / "run", check=False)
    assert proc.returncode != 0
    assert "nowhere" in proc.stderr and "Traceback" not in proc.stderr
