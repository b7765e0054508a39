"""Config validation before any data is loaded: one line naming the key, the value and what is allowed."""
from __future__ import annotations

import re

from omegaconf import DictConfig


class ConfigError(ValueError):
    """An invalid config value (reported as one line, no traceback)."""


DATASETS = ("fashion_mnist", "cifar10", "cifar100", "image_folder", "synthetic")
DOWNSAMPLE = ("strided", "blurpool", "maxblur")


def _require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {allowed}")


def _positive(cfg: DictConfig, key: str, integer: bool = True) -> None:
    value = _get(cfg, key)
    kind = int if integer else (int, float)
    _require(isinstance(value, kind) and not isinstance(value, bool) and value > 0, key, value,
             f"must be a positive {'integer' if integer else 'number'}")


def _get(cfg: DictConfig, key: str):
    node = cfg
    for part in key.split("."):
        node = node.get(part) if node is not None else None
    return node


def validate_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for the first invalid value found."""
    _require(cfg.task in ("train", "probe"), "task", cfg.task, "allowed: train, probe")
    _require(isinstance(cfg.seed, int), "seed", cfg.seed, "must be an integer")
    t = cfg.trainer
    _require(t.precision in ("bf16", "fp32"), "trainer.precision", t.precision, "allowed: bf16, fp32")
    _require(bool(re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(t.device))), "trainer.device", t.device,
             "allowed: auto, cpu, cuda, cuda:N")
    if cfg.task == "probe":
        _require(cfg.get("probe") is not None and cfg.probe.get("_target_"), "probe", cfg.get("probe"),
                 "task=probe needs probe._target_ (use an experiment= config)")
        return
    _positive(cfg, "trainer.epochs")
    _require(0 <= t.label_smoothing < 1, "trainer.label_smoothing", t.label_smoothing, "must be in [0, 1)")
    if t.get("max_steps_per_epoch") is not None:
        _positive(cfg, "trainer.max_steps_per_epoch")
    _positive(cfg, "trainer.eval_batch_size")
    d = cfg.data
    _require(d.name in DATASETS, "data.name", d.name, f"allowed: {', '.join(DATASETS)}")
    _positive(cfg, "data.batch_size")
    _require(isinstance(d.val_size, int) and d.val_size >= 0, "data.val_size", d.val_size,
             "must be an integer >= 0")
    if d.get("train_subset") is not None:
        _positive(cfg, "data.train_subset")
    if d.name == "synthetic":
        for key in ("image_size", "channels", "num_classes", "train_size", "test_size"):
            _positive(cfg, f"data.{key}")
        _require(d.num_classes >= 2, "data.num_classes", d.num_classes, "must be >= 2")
        _require(d.val_size < d.train_size, "data.val_size", d.val_size,
                 f"must be smaller than data.train_size={d.train_size}")
    for key in ("crop_padding", "cutout"):
        v = d.aug.get(key, 0)
        _require(isinstance(v, int) and v >= 0, f"data.aug.{key}", v, "must be an integer >= 0")
    _positive(cfg, "optim.lr", integer=False)
    _require(cfg.optim.get("weight_decay", 0) >= 0, "optim.weight_decay", cfg.optim.get("weight_decay"),
             "must be >= 0")
    _validate_model(cfg)


def _validate_model(cfg: DictConfig) -> None:
    import models
    from models.layers import CONV_KINDS

    m = cfg.model
    names = models.list_models()
    _require(m.name in names, "model.name", m.name, f"allowed: {', '.join(names)}")
    if "conv" in m:
        _require(m.conv in CONV_KINDS, "model.conv", m.conv, f"allowed: {', '.join(CONV_KINDS)}")
    if "downsample" in m:
        _require(m.downsample in DOWNSAMPLE, "model.downsample", m.downsample, f"allowed: {', '.join(DOWNSAMPLE)}")
    if "filt_size" in m:
        _require(isinstance(m.filt_size, int) and 1 <= m.filt_size <= 7, "model.filt_size", m.filt_size,
                 "must be an integer in 1..7")
    if "kernel_size" in m:
        _require(isinstance(m.kernel_size, int) and m.kernel_size % 2 == 1 and m.kernel_size > 0,
                 "model.kernel_size", m.kernel_size, "involution kernels must be odd (3, 5, 7, ...)")
    if "alpha" in m:
        _require(0 <= m.alpha < 1, "model.alpha", m.alpha, "octave alpha must be in [0, 1)")
        size = cfg.data.image_size
        _require(m.alpha == 0 or size % 8 == 0, "data.image_size", size,
                 f"octave alpha={m.alpha} needs a size divisible by 8 (the low-frequency branch halves 3 times)")
    if "width" in m:
        _positive(cfg, "model.width", integer=False)
    # Last: build the model so every constructor check (channel splits, group counts...) runs now.
    from hydra.utils import instantiate

    try:
        instantiate(m)
    except Exception as e:
        cause = e.__cause__ or e
        raise ConfigError(f"model={m.name}: {cause}") from None
