"""Config validation: every bad value fails before any data is loaded, as one line naming the key."""
from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir

from engine.validate import ConfigError, check_split_sizes, validate_config
from tests.helpers import ROOT, run_cli

SMOKE = ["experiment=smoke", "logger=none"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # CLI runs on a shared, oversubscribed machine
# resnet20.yaml keys the other families do not take
BARE = ["~model.conv", "~model.downsample", "~model.filt_size"]
REDNET = ["model.name=rednet26", *BARE]
OCTAVE = ["model.name=oct_resnet20", *BARE]


def _compose(overrides):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "configs")):
        return compose("train", overrides=[*SMOKE, *overrides])


def _error(overrides) -> str:
    cfg = _compose(overrides)
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    msg = str(info.value)
    assert "\n" not in msg and " is invalid: " in msg, msg
    return msg


INVALID = {
    # names
    "unknown model": (["model.name=resnet21"], "model.name='resnet21'"),
    "unknown dataset": (["data.name=mnist3d"], "data.name='mnist3d'"),
    "unknown conv": (["model.conv=c7"], "model.conv='c7'"),
    "unknown downsample": (["model.downsample=avgpool"], "model.downsample='avgpool'"),
    "unknown task": (["task=eval"], "task='eval'"),
    # kernel parity and channel splits
    "even involution kernel": ([*REDNET, "+model.kernel_size=4"], "model.kernel_size=4"),
    "zero involution kernel": ([*REDNET, "+model.kernel_size=0"], "model.kernel_size=0"),
    "involution groups do not split channels": ([*REDNET, "+model.group_channels=5"], "multiple of 10"),
    "involution group_channels zero": ([*REDNET, "+model.group_channels=0"], "model.group_channels=0"),
    "c2sp channels not divisible by 4": (["model.conv=c2sp", "model.width=0.3"], "multiple of 4"),
    "c4sp channels not divisible by 4": (["model.conv=c4sp", "model.width=0.1"], "multiple of 4"),
    "filt_size 0": (["model.downsample=blurpool", "model.filt_size=0"], "model.filt_size=0"),
    "filt_size 8": (["model.downsample=blurpool", "model.filt_size=8"], "model.filt_size=8"),
    "width 0": (["model.width=0"], "model.width=0"),
    # octave
    "octave alpha 1": ([*OCTAVE, "+model.alpha=1.0"], "model.alpha=1.0"),
    "octave alpha negative": ([*OCTAVE, "+model.alpha=-0.25"], "model.alpha=-0.25"),
    "image too small for the net": (["model.conv=c2", "data.image_size=1"], "data.image_size=1"),
    # trainer
    "zero epochs": (["trainer.epochs=0"], "trainer.epochs=0"),
    "negative epochs": (["trainer.epochs=-3"], "trainer.epochs=-3"),
    "fractional epochs": (["trainer.epochs=1.5"], "trainer.epochs=1.5"),
    "bad precision": (["trainer.precision=fp16"], "trainer.precision='fp16'"),
    "bad device": (["trainer.device=tpu"], "trainer.device='tpu'"),
    "label smoothing 1": (["trainer.label_smoothing=1.0"], "trainer.label_smoothing=1.0"),
    "label smoothing negative": (["trainer.label_smoothing=-0.1"], "trainer.label_smoothing=-0.1"),
    "zero max steps": (["trainer.max_steps_per_epoch=0"], "trainer.max_steps_per_epoch=0"),
    "zero eval batch": (["trainer.eval_batch_size=0"], "trainer.eval_batch_size=0"),
    "word eval batch": (["trainer.eval_batch_size=big"], "trainer.eval_batch_size='big'"),
    # data
    "zero batch size": (["data.batch_size=0"], "data.batch_size=0"),
    "negative batch size": (["data.batch_size=-8"], "data.batch_size=-8"),
    "batch larger than the training set": (["data.batch_size=4096"], "data.batch_size=4096"),
    "val_size larger than the training set": (["data.val_size=5000"], "data.val_size=5000"),
    "val_size equal to the training set": (["data.val_size=2304"], "data.val_size=2304"),
    "negative val_size": (["data.val_size=-1"], "data.val_size=-1"),
    "train_subset beyond the training set": (["data.train_subset=5000"], "data.train_subset=5000"),
    "negative cutout": (["data.aug.cutout=-4"], "data.aug.cutout=-4"),
    "one class": (["data.num_classes=1"], "data.num_classes=1"),
    "seed not an integer": (["seed=abc"], "seed='abc'"),
    # optimiser / schedule
    "zero lr": (["optim.lr=0"], "optim.lr=0"),
    "negative lr": (["optim.lr=-0.1"], "optim.lr=-0.1"),
    "infinite lr": (["optim.lr=inf"], "optim.lr=inf"),
    "negative weight decay": (["optim.weight_decay=-1e-4"], "optim.weight_decay=-0.0001"),
    "momentum 1.5": (["optim.momentum=1.5"], "optim.momentum=1.5"),
    "pct_start 1.5": (["sched.pct_start=1.5"], "sched.pct_start=1.5"),
    "warmup longer than training": (["sched=cosine", "sched.warmup_epochs=5"], "sched.warmup_epochs=5"),
}


@pytest.mark.parametrize("overrides,expected", list(INVALID.values()), ids=list(INVALID))
def test_invalid_config_names_key_and_value(overrides, expected):
    assert expected in _error(overrides)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_config_error(device):
    assert "CUDA is not available" in _error([f"trainer.device={device}"])


VALID = {
    "smoke": [],
    "c2sp width 0.5": ["model.conv=c2sp", "model.width=0.5"],
    "blurpool filt 1": ["model.downsample=blurpool", "model.filt_size=1"],
    "rednet odd kernel": [*REDNET, "+model.kernel_size=3", "model.width=1.0"],
    "octave alpha 0.25": [*OCTAVE, "+model.alpha=0.25"],
    "octave alpha 0 any size": [*OCTAVE, "+model.alpha=0.0", "data.image_size=12"],
    "octave pads a size it cannot halve": [*OCTAVE, "+model.alpha=0.25", "data.image_size=12"],
    "octave on 28x28 single-channel images": ["model=oct_resnet20", "data.image_size=28", "data.channels=1"],
    "val_size 0": ["data.val_size=0"],
    "fp32 cpu": ["trainer.precision=fp32", "trainer.device=cpu"],
}


@pytest.mark.parametrize("overrides", list(VALID.values()), ids=list(VALID))
def test_valid_configs_pass(overrides):
    validate_config(_compose(overrides))


@pytest.mark.parametrize("asked, expected", [("auto", 128), (512, 512)])
def test_auto_settings_resolve_to_what_they_mean_on_the_device_and_explicit_ones_stay(asked, expected):
    from engine.job import resolve_auto

    cfg = _compose(["trainer.device=cpu", f"trainer.eval_batch_size={asked}", "trainer.precision=auto"])
    resolve_auto(cfg)
    assert cfg.trainer.eval_batch_size == expected  # auto: 128 on a CPU
    assert cfg.trainer.precision in ("bf16", "fp32")
    validate_config(cfg)


def test_split_sizes_of_a_loaded_dataset():
    cfg = _compose(["data=cifar10", "data.val_size=5000", "data.batch_size=256"])
    check_split_sizes(cfg, 50_000)
    with pytest.raises(ConfigError, match=r"data.val_size=5000 is invalid: .*4000 training images"):
        check_split_sizes(cfg, 4000)
    with pytest.raises(ConfigError, match=r"data.batch_size=256 is invalid: .*200 training images"):
        check_split_sizes(cfg, 5200)


def _assert_one_line_config_error(proc, key: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"config error: {key}="), proc.stderr
    assert " is invalid: " in lines[0]


@pytest.mark.parametrize("overrides,key", [
    (["trainer.epochs=0"], "trainer.epochs"),
    ([*REDNET, "+model.kernel_size=4"], "model.kernel_size"),
    (["model.conv=c2sp", "model.width=0.3"], "model"),
])
def test_cli_config_error_is_one_line_exit_2(tmp_path, overrides, key):
    proc = run_cli(*SMOKE, *overrides, run_dir=tmp_path / "run", check=False, timeout=120, env=ONE_THREAD)
    _assert_one_line_config_error(proc, key)


def test_cli_val_size_beyond_a_real_dataset_is_a_config_error(tmp_path):
    """Real datasets are only sized after loading: the loop raises the same one-line error."""
    proc = run_cli("data=fashion_mnist", "data.val_size=70000", "data.source.download=false", "logger=none",
                   run_dir=tmp_path / "run", check=False, timeout=120, env=ONE_THREAD)
    if proc.stderr.startswith("data error"):
        pytest.skip("Fashion-MNIST is not available offline here")
    _assert_one_line_config_error(proc, "data.val_size")
    assert "60000 training images" in proc.stderr


def test_a_channels_last_setup_that_crashes_torch_is_one_line(tmp_path):
    """torch 2.14.1 corrupts the heap in the CPU fp32 backward of NHWC 1x1/2 convs with < 8 input channels."""
    import torch

    from tests.helpers import run_cli

    if torch.__version__.split("+")[0] != "2.14.1":
        pytest.skip("the guard is for torch 2.14.1")
    proc = run_cli("experiment=smoke", "logger=none", "model.width=0.25", "trainer.precision=fp32",
                   "trainer.device=cpu", "trainer.channels_last=true", run_dir=tmp_path / "r", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("config error: trainer.channels_last=True is invalid: torch 2.14.1 crashes"), first
