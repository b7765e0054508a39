"""The one training loop every experiment reuses (airbench-style: tensors in memory, batched aug).

``train(cfg)`` runs a whole Hydra job (probe or training), always finishes its logger, and returns
the final metrics that are also written to ``metrics.json`` in the run dir.
"""
from __future__ import annotations

import logging
import os
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from engine import distributed as dist
from engine.augment import BatchAugment
from engine.checkpoint import load_checkpoint, save_atomic
from engine.data import RawData, channel_stats, split_train_val
from engine.optim import param_groups
from engine.validate import check_split_sizes

log = logging.getLogger(__name__)
SPLIT_SEED = 0  # one train/val partition (and train_subset) for every run seed: seeds vary init and order


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf."""


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{dist.local_rank()}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"trainer.device={name} but CUDA is not available; use trainer.device=cpu or auto")
    return torch.device(name)


class Batches:
    """Normalises uint8 images on the device and applies batched augmentation."""

    def __init__(self, mean, std, device: torch.device, channels_last: bool):
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1) * 255
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, x_u8: torch.Tensor, aug: BatchAugment | None = None, gen=None) -> torch.Tensor:
        if aug is not None:
            x_u8 = aug.geometric(x_u8, gen)
        x = ((x_u8.float() - self.mean) / self.std).contiguous(memory_format=self.fmt)
        return aug.erase(x, gen) if aug is not None else x


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (CUDA with bf16; a CPU with AVX-512 bf16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where it is native, else ``fp32`` (emulated bf16 is ~10x slower than fp32 on an
    AVX2-only CPU); an explicit ``bf16`` or ``fp32`` is returned as asked."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def predict(model, x_u8, prep: Batches, precision: str, batch_size: int = 1024) -> torch.Tensor:
    """fp32 logits of an uint8 image tensor (already on the model's device), model in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    outs = []
    for i in range(0, len(x_u8), batch_size):
        with autocast(device, precision):
            outs.append(model(prep(x_u8[i:i + batch_size])).float())
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate(model, x_u8, y, prep, precision, batch_size=1024) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy in percent); NaNs for an empty split."""
    if len(x_u8) == 0:
        return float("nan"), float("nan")
    logits = predict(model, x_u8, prep, precision, batch_size)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item() * 100


def _rng_state(gen: torch.Generator) -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "data": gen.get_state()}


def _set_rng_state(s: dict, gen: torch.Generator) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])
    if s["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    gen.set_state(s["data"])


def fit(cfg: DictConfig, device: torch.device, logger, out_dir: Path, resume_state: dict | None = None
        ) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.data``; return final metrics (test split evaluated once, at the end).

    Resumes from ``resume_state`` (the caller's already-read checkpoint) or, when ``trainer.resume`` is
    set and none is given, from ``<out_dir>/checkpoints/last.pt``.
    """
    tcfg, dcfg = cfg.trainer, cfg.data
    t_setup = time.perf_counter()
    raw = instantiate(dcfg.source)
    check_split_sizes(cfg, len(raw.train_y))  # ConfigError (one line) for sizes the dataset cannot give
    (trx, tr_y), (vx, vy) = split_train_val(raw, int(dcfg.val_size), SPLIT_SEED)
    if dcfg.get("train_subset") and int(dcfg.train_subset) < len(tr_y):
        # a stratified random subset (image folders are sorted by class: never take the first N)
        rest = RawData(trx, tr_y, trx[:0], tr_y[:0], raw.classes)
        _, (trx, tr_y) = split_train_val(rest, int(dcfg.train_subset), SPLIT_SEED)
    mean, std = channel_stats(trx)
    trx, tr_y, vx, vy = (t.to(device) for t in (trx, tr_y, vx, vy))
    tex, tey = raw.test_x.to(device), raw.test_y.to(device)
    log.info("data %s: train %d, val %d, test %d, shape %s, %d classes", dcfg.name, len(trx), len(vx),
             len(tex), tuple(trx.shape[1:]), len(raw.classes))

    model = instantiate(cfg.model)
    stats = _complexity(model, tuple(trx.shape[1:]))
    fmt = torch.channels_last if tcfg.channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=fmt)
    net = dist.wrap(model, device)
    step_model = torch.compile(net) if tcfg.compile else net

    world = dist.world_size()
    bs = int(dcfg.batch_size)
    if bs % world:
        raise ValueError(f"data.batch_size={bs} must be divisible by the {world} distributed processes")
    steps_per_epoch = len(trx) // bs
    if tcfg.get("max_steps_per_epoch"):
        steps_per_epoch = min(steps_per_epoch, int(tcfg.max_steps_per_epoch))
    if steps_per_epoch == 0:
        raise ValueError(f"data.batch_size={bs} is larger than the {len(trx)} training images")
    epochs = int(tcfg.epochs)
    optimizer = instantiate(cfg.optim)(param_groups(model, float(cfg.optim.weight_decay)))
    scheduler = instantiate(cfg.sched)(optimizer, total_steps=epochs * steps_per_epoch,
                                       steps_per_epoch=steps_per_epoch)
    aug = BatchAugment(bool(dcfg.augment), **OmegaConf.to_container(dcfg.aug))
    prep = Batches(mean, std, device, bool(tcfg.channels_last))
    gen = torch.Generator(device=device)
    gen.manual_seed(int(cfg.seed) + 1)

    ckpt = out_dir / "checkpoints" / "last.pt"
    start_epoch, history, train_time, seen = 0, [], 0.0, 0
    state = resume_state if resume_state is not None else (
        load_checkpoint(ckpt) if tcfg.resume and ckpt.exists() else None)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], gen)
        start_epoch, history = state["epoch"], state["history"]
        train_time, seen = state["train_time_s"], state["images_seen"]
        log.info("resumed from %s at epoch %d", ckpt, start_epoch)
    setup_s = time.perf_counter() - t_setup

    rank, show_bar = dist.rank(), tcfg.progress and sys.stderr.isatty() and dist.is_main()
    for epoch in range(start_epoch, epochs):
        model.train()
        perm = torch.randperm(len(trx), generator=gen, device=device)[: steps_per_epoch * bs]
        perm = perm.view(steps_per_epoch, bs)[:, rank::world]
        t0, loss_sum, correct, n = time.perf_counter(), torch.zeros((), device=device), 0, 0
        bar = tqdm(perm, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not show_bar)
        for idx in bar:
            x, y = prep(trx[idx], aug, gen), tr_y[idx]
            with autocast(device, tcfg.precision):
                out = step_model(x)
                loss = F.cross_entropy(out.float(), y, label_smoothing=float(tcfg.label_smoothing))
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"training loss is {loss.item()} at epoch {epoch + 1}, "
                                         f"step {len(history) * steps_per_epoch + n // len(y)}; {_nan_hint(cfg)}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(y)
            correct += (out.argmax(1) == y).sum()
            n += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        train_time, seen = train_time + dt, seen + n * world
        val_loss, val_acc = evaluate(model, vx, vy, prep, tcfg.precision, int(tcfg.eval_batch_size))
        row = {"epoch": epoch + 1, "train_loss": (loss_sum / n).item(), "train_acc": float(correct) / n * 100,
               "val_loss": val_loss, "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
               "epoch_time_s": dt, "throughput_img_s": n * world / dt}
        history.append(row)
        logger.log_metrics({f"train/{k}" if k.startswith("train") else k: v for k, v in row.items()},
                           step=epoch + 1)
        log.info("epoch %d/%d  train_loss %.4f  train_acc %.2f  val_loss %.4f  val_acc %.2f  lr %.4g  %.1fs "
                 "(%.0f img/s)", epoch + 1, epochs, row["train_loss"], row["train_acc"], val_loss, val_acc,
                 row["lr"], dt, row["throughput_img_s"])
        if not all(t.isfinite().all() for t in model.state_dict().values() if t.is_floating_point()):
            raise NonFiniteLossError(f"model weights became non-finite in epoch {epoch + 1} (not checkpointed); "
                                     f"{_nan_hint(cfg)}")
        if tcfg.checkpoint and dist.is_main():
            save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "rng": _rng_state(gen), "epoch": epoch + 1,
                         "history": history, "train_time_s": train_time, "images_seen": seen,
                         "wandb_id": getattr(logger, "run_id", None), "mean": mean, "std": std,
                         "config": OmegaConf.to_container(cfg, resolve=True)}, ckpt)

    test_loss, test_acc = evaluate(model, tex, tey, prep, tcfg.precision, int(tcfg.eval_batch_size))
    last = history[-1] if history else {}
    metrics = {"test_acc": test_acc, "test_loss": test_loss, "val_acc": last.get("val_acc", float("nan")),
               "val_loss": last.get("val_loss", float("nan")), "train_loss": last.get("train_loss"),
               "epochs": epochs, "train_time_s": train_time, "setup_time_s": setup_s,
               "train_throughput_img_s": seen / train_time if train_time else float("nan"),
               "train_size": len(trx), "val_size": len(vx), "test_size": len(tex), **stats, "history": history}
    ctx = {"model": model, "prep": prep, "precision": tcfg.precision, "test_x": tex, "test_y": tey,
           "val_x": vx, "val_y": vy, "out_dir": out_dir, "logger": logger, "seed": int(cfg.seed)}
    for name, evaluator in (cfg.get("evaluators") or {}).items():
        extra = instantiate(evaluator)(**ctx)
        log.info("evaluator %s: %s", name, extra)
        metrics.update(extra)
    return metrics


def _nan_hint(cfg: DictConfig) -> str:
    hint = f"lower optim.lr (now {cfg.optim.lr})"
    return hint + (" or use trainer.precision=fp32" if cfg.trainer.precision == "bf16" else "")


def _complexity(model: torch.nn.Module, input_size: tuple[int, ...]) -> dict[str, int]:
    from models.complexity import profile

    p = profile(model, input_size)
    return {"params": int(p["params"]), "macs": int(p["macs"])}
