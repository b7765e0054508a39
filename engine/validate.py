"""Config validation before any data is loaded: one line naming the key, the value and what is allowed.

``validate_config(cfg)`` raises ``ConfigError("<key>=<value> is invalid: <allowed>")``; ``train.py``
prints it as ``config error: ...`` and exits with code 2. A model is validated by building it once and
running it on one configured input (its own constructor states its rules); that built model is what
``fit`` trains. Facts of a real dataset are only known once it is loaded: the training loop calls
``check_data_facts`` and ``check_split_sizes`` then (same error, same exit code).
"""
from __future__ import annotations

import math
import re

from omegaconf import DictConfig

from engine.distributed import world_size


class ConfigError(ValueError):
    """An invalid config value (reported as one line, no traceback)."""


DATASETS = ("fashion_mnist", "cifar10", "cifar100", "image_folder", "synthetic")
PRECISIONS = ("auto", "bf16", "fp32")


def require(ok: bool, key: str, value, allowed: str) -> None:
    """Raise ``ConfigError("<key>=<value> is invalid: <allowed>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {allowed}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _get(cfg: DictConfig, key: str):
    node = cfg
    for part in key.split("."):
        node = node.get(part) if node is not None else None
    return node


def _positive(cfg: DictConfig, key: str, integer: bool = True) -> None:
    value = _get(cfg, key)
    ok = (_is_int(value) if integer else _is_num(value)) and value > 0
    require(ok, key, value, f"must be a positive {'integer' if integer else 'number'}")


def _in_range(cfg: DictConfig, key: str, lo: float, hi: float, hi_open: bool = True) -> None:
    value = _get(cfg, key)
    ok = _is_num(value) and lo <= value and (value < hi if hi_open else value <= hi)
    require(ok, key, value, f"must be a number in [{lo}, {hi}{')' if hi_open else ']'}")


def validate_config(cfg: DictConfig):
    """Raise ``ConfigError`` for the first invalid value found; return the built model (None for a probe).

    Call it after seeding: the returned model's initial weights are the run's."""
    require(cfg.task in ("train", "probe"), "task", cfg.task, "allowed: train, probe")
    require(_is_int(cfg.seed), "seed", cfg.seed, "must be an integer")
    _validate_device(cfg.trainer)
    if cfg.task == "probe":
        require(cfg.get("probe") is not None and cfg.probe.get("_target_"), "probe", cfg.get("probe"),
                "task=probe needs probe._target_ (use an experiment= config)")
        return None
    _validate_trainer(cfg)
    _validate_data(cfg)
    _validate_optim(cfg)
    return _validate_model(cfg)


def _validate_device(t: DictConfig) -> None:
    require(t.precision in PRECISIONS, "trainer.precision", t.precision, f"allowed: {', '.join(PRECISIONS)}")
    device = str(t.device)
    require(bool(re.fullmatch(r"auto|cpu|cuda(:\d+)?", device)), "trainer.device", t.device,
            "allowed: auto, cpu, cuda, cuda:N")
    if device.startswith("cuda"):
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        require(n > 0, "trainer.device", device, "CUDA is not available on this machine; use cpu or auto")
        index = int(device.split(":")[1]) if ":" in device else 0
        require(index < n, "trainer.device", device, f"this machine has {n} CUDA device(s): cuda:0..cuda:{n - 1}")


def _validate_trainer(cfg: DictConfig) -> None:
    _positive(cfg, "trainer.epochs")
    _in_range(cfg, "trainer.label_smoothing", 0, 1)
    if cfg.trainer.get("max_steps_per_epoch") is not None:
        _positive(cfg, "trainer.max_steps_per_epoch")
    value = _get(cfg, "trainer.eval_batch_size")
    require(value == "auto" or (_is_int(value) and value > 0), "trainer.eval_batch_size", value,
            "must be auto or a positive integer")


def _validate_data(cfg: DictConfig) -> None:
    d = cfg.data
    require(d.name in DATASETS, "data.name", d.name, f"allowed: {', '.join(DATASETS)}")
    _positive(cfg, "data.batch_size")
    world = world_size()
    require(d.batch_size % world == 0, "data.batch_size", d.batch_size,
            f"must be divisible by the {world} distributed processes (it is the global batch, split over ranks)")
    require(_is_int(d.val_size) and d.val_size >= 0, "data.val_size", d.val_size, "must be an integer >= 0")
    if d.get("train_subset") is not None:
        _positive(cfg, "data.train_subset")
    for key in ("crop_padding", "cutout"):
        v = d.aug.get(key, 0)
        require(_is_int(v) and v >= 0, f"data.aug.{key}", v, "must be an integer >= 0")
    if d.name == "synthetic":  # sizes known before loading; real datasets are checked after loading
        for key in ("image_size", "channels", "num_classes", "train_size", "test_size"):
            _positive(cfg, f"data.{key}")
        require(d.num_classes >= 2, "data.num_classes", d.num_classes, "must be >= 2")
        check_split_sizes(cfg, d.train_size)


def check_split_sizes(cfg: DictConfig, n_train: int) -> None:
    """``data.val_size``, ``data.train_subset`` and ``data.batch_size`` against ``n_train`` images."""
    d = cfg.data
    require(d.val_size < n_train, "data.val_size", d.val_size,
            f"must be smaller than the {n_train} training images of data={d.name}")
    left = n_train - d.val_size
    if d.get("train_subset") is not None:
        require(d.train_subset <= left, "data.train_subset", d.train_subset,
                f"must be <= the {left} training images left after data.val_size={d.val_size}")
        left = d.train_subset
    require(d.batch_size <= left, "data.batch_size", d.batch_size,
            f"must be <= the {left} training images (after data.val_size={d.val_size})")


def _validate_optim(cfg: DictConfig) -> None:
    _positive(cfg, "optim.lr", integer=False)
    wd = cfg.optim.get("weight_decay", 0)
    require(_is_num(wd) and wd >= 0, "optim.weight_decay", wd, "must be a number >= 0")
    if "momentum" in cfg.optim:
        _in_range(cfg, "optim.momentum", 0, 1)
    if "warmup_epochs" in cfg.sched:
        _in_range(cfg, "sched.warmup_epochs", 0, cfg.trainer.epochs, hi_open=False)
    if "pct_start" in cfg.sched:
        _in_range(cfg, "sched.pct_start", 0, 1)


def check_data_facts(cfg: DictConfig, raw) -> None:
    """``data.num_classes``, ``channels`` and ``image_size`` against the loaded ``RawData``."""
    d, shape = cfg.data, tuple(raw.train_x.shape[1:])
    found = {"num_classes": len(raw.classes), "channels": shape[0], "image_size": shape[1]}
    for key, value in found.items():
        require(d.get(key) == value, f"data.{key}", d.get(key),
                f"the loaded data={d.name} has {value} (images {'x'.join(map(str, shape))}, {len(raw.classes)} "
                f"classes): set data.{key}={value}")
    require(shape[1] == shape[2], "data.image_size", d.image_size, f"the loaded images are {shape[1]}x{shape[2]}, "
            "not square")


def _validate_model(cfg: DictConfig):
    import models
    from models.layers import CONV_KINDS, DOWNSAMPLE_KINDS

    m = cfg.model
    names = models.list_models()
    require(m.get("name") in names, "model.name", m.get("name"), f"allowed: {', '.join(names)}")
    if "conv" in m:
        require(m.conv in CONV_KINDS, "model.conv", m.conv, f"allowed: {', '.join(CONV_KINDS)}")
    if "downsample" in m:
        require(m.downsample in DOWNSAMPLE_KINDS, "model.downsample", m.downsample,
                f"allowed: {', '.join(DOWNSAMPLE_KINDS)}")
    if "filt_size" in m:
        require(_is_int(m.filt_size) and 1 <= m.filt_size <= 7, "model.filt_size", m.filt_size,
                "must be an integer in 1..7")
    if "kernel_size" in m:
        require(_is_int(m.kernel_size) and m.kernel_size % 2 == 1 and m.kernel_size > 0,
                "model.kernel_size", m.kernel_size, "involution kernels must be odd (3, 5, 7, ...)")
    if "group_channels" in m:
        _positive(cfg, "model.group_channels")
    if "width" in m:
        _positive(cfg, "model.width", integer=False)
    if "alpha" in m:
        _in_range(cfg, "model.alpha", 0, 1)
    return _build_model(cfg)


def _build_model(cfg: DictConfig):
    """Build the model once (every constructor check runs) and run it on one configured input."""
    import torch
    from hydra.utils import instantiate

    m, d = cfg.model, cfg.data
    try:
        model = instantiate(m)
    except Exception as e:
        cause = e.__cause__ or e
        raise ConfigError(f"model={m.name!r} is invalid: {_first_line(cause)}") from None
    shape = (2, int(d.channels), int(d.image_size), int(d.image_size))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(shape))
    except Exception as e:
        raise ConfigError(f"data.image_size={d.image_size!r} is invalid: model={m.name!r} cannot run on "
                          f"{shape[1]}x{shape[2]}x{shape[3]} inputs ({_first_line(e)})") from None
    return model.train()


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def check_memory_format(cfg: DictConfig, model, device) -> None:
    """Refuse a channels_last setup that crashes torch: on torch 2.14.1 the CPU fp32 backward of a
    channels_last 1x1 stride-2 conv with fewer than 8 input channels corrupts the heap (SIGSEGV or
    "double free"; seen at model.width=0.25, e.g. a 4 -> 8 shortcut). One line instead of a crash."""
    import torch

    t = cfg.trainer
    if not (t.channels_last and device.type == "cpu" and t.precision == "fp32"
            and torch.__version__.split("+")[0] == "2.14.1"):
        return
    bad = next((name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)
                and m.kernel_size == (1, 1) and m.stride == (2, 2) and m.in_channels < 8), None)
    require(bad is None, "trainer.channels_last", True,
            f"torch 2.14.1 crashes in the CPU fp32 backward of the channels_last 1x1 stride-2 conv {bad} "
            f"(< 8 input channels); use trainer.channels_last=false or a larger model.width")
