"""The training loop every trained run uses (airbench-style: uint8 tensors in memory, batched augmentation).

``fit`` reads like a table of contents (pycls ``train_model``): set up the data, set up the optimiser
and schedule, restore a checkpoint, then per epoch train, evaluate, log and checkpoint; finally evaluate
the test split once and assemble the metrics. ``engine.job.train`` builds the model (in validation) and
the logger, and writes ``metrics.json``; inference helpers live in ``engine.inference``.
"""
from __future__ import annotations

import logging
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from engine import distributed as dist
from engine import preempt, provenance
from engine.augment import BatchAugment
from engine.checkpoint import save_atomic
from engine.data import RawData, channel_stats, split_train_val
from engine.inference import Batches, autocast, evaluate
from engine.optim import param_groups
from engine.state import EpochPosition, Progress, restore, training_state
from engine.validate import check_data_facts, check_memory_format, check_split_sizes

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


@dataclass
class Splits:
    """uint8 images and labels on the device; ``mean``/``std`` are the training split's channel stats."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: list[float]
    std: list[float]


@dataclass
class Setup:
    """The objects one training run steps: model (and its DDP/compiled wrapper), optimiser, schedule."""

    model: torch.nn.Module
    step_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    aug: BatchAugment
    prep: Batches
    gen: torch.Generator
    steps_per_epoch: int
    epochs: int


def setup_data(cfg: DictConfig, device: torch.device) -> Splits:
    """Load ``cfg.data``, check it against the config, split train/val (and ``train_subset``)."""
    dcfg = cfg.data
    raw = instantiate(dcfg.source)
    check_data_facts(cfg, raw)
    check_split_sizes(cfg, len(raw.train_y))
    (trx, tr_y), (vx, vy) = split_train_val(raw, int(dcfg.val_size), SPLIT_SEED)
    if dcfg.get("train_subset") and int(dcfg.train_subset) < len(tr_y):
        # a stratified random subset (image folders are sorted by class: never take the first N)
        rest = RawData(trx, tr_y, trx[:0], tr_y[:0], raw.classes)
        _, (trx, tr_y) = split_train_val(rest, int(dcfg.train_subset), SPLIT_SEED)
    mean, std = channel_stats(trx)
    splits = Splits(*(t.to(device) for t in (trx, tr_y, vx, vy, raw.test_x, raw.test_y)), mean, std)
    log.info("data %s: train %d, val %d, test %d, shape %s, %d classes", dcfg.name, len(trx), len(vx),
             len(splits.test_x), tuple(trx.shape[1:]), len(raw.classes))
    return splits


def setup_training(cfg: DictConfig, model: torch.nn.Module, splits: Splits, device: torch.device) -> Setup:
    """Place the model, build optimiser, schedule, augmentation and the data-order generator."""
    tcfg = cfg.trainer
    check_memory_format(cfg, model, device)
    model = model.to(device=device, memory_format=torch.channels_last if tcfg.channels_last else
                     torch.contiguous_format)
    net = dist.wrap(model, device)
    steps = len(splits.train_x) // int(cfg.data.batch_size)  # batch_size is global (all ranks together)
    if tcfg.get("max_steps_per_epoch"):
        steps = min(steps, int(tcfg.max_steps_per_epoch))
    epochs = int(tcfg.epochs)
    optimizer = instantiate(cfg.optim)(param_groups(model, float(cfg.optim.weight_decay)))
    scheduler = instantiate(cfg.sched)(optimizer, total_steps=epochs * steps, steps_per_epoch=steps)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(cfg.seed) + 1)
    return Setup(model, torch.compile(net) if tcfg.compile else net, optimizer, scheduler,
                 BatchAugment(bool(cfg.data.augment), **OmegaConf.to_container(cfg.data.aug)),
                 Batches(splits.mean, splits.std, device, bool(tcfg.channels_last)), gen, steps, epochs)


def epoch_batches(s: Setup, n_train: int, batch_size: int, device: torch.device) -> torch.Tensor:
    """``(steps, batch_size)`` global batches of one epoch, drawn from the data-order generator."""
    perm = torch.randperm(n_train, generator=s.gen, device=device)[: s.steps_per_epoch * batch_size]
    return perm.view(s.steps_per_epoch, batch_size)


def train_epoch(cfg: DictConfig, s: Setup, splits: Splits, progress: Progress, stop: preempt.Preemption
                ) -> EpochPosition:
    """Train one epoch (or the rest of a preempted one); return its position, ``step`` at the end or where
    a signal stopped it."""
    device, epoch = splits.train_x.device, progress.epoch
    pos = progress.partial or EpochPosition(epoch_batches(s, len(splits.train_x), int(cfg.data.batch_size), device))
    progress.partial = None
    loss_sum, correct = torch.tensor(pos.loss_sum, device=device), torch.tensor(pos.correct, device=device)
    show_bar = cfg.trainer.progress and sys.stderr.isatty() and dist.is_main()
    s.model.train()
    t0 = time.perf_counter()
    for idx in tqdm(pos.batches[pos.step:], desc=f"epoch {epoch + 1}/{s.epochs}", leave=False, disable=not show_bar):
        idx = dist.shard(idx)
        x, y = s.prep(splits.train_x[idx], s.aug, s.gen), splits.train_y[idx]
        with autocast(device, cfg.trainer.precision):
            out = s.step_model(x)
            loss = F.cross_entropy(out.float(), y, label_smoothing=float(cfg.trainer.label_smoothing))
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"training loss is {loss.item()} at epoch {epoch + 1}, step {pos.step + 1}; "
                                     f"{_nan_hint(cfg)}")
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        s.scheduler.step()
        loss_sum += loss.detach() * len(y)
        correct += (out.argmax(1) == y).sum()
        pos.step, pos.seen = pos.step + 1, pos.seen + len(y)
        if stop.requested(device) and pos.step < s.steps_per_epoch:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    pos.loss_sum, pos.correct, pos.elapsed_s = loss_sum.item(), int(correct), pos.elapsed_s + time.perf_counter() - t0
    return pos


def epoch_row(cfg: DictConfig, s: Setup, splits: Splits, pos: EpochPosition, epoch: int) -> dict[str, float]:
    """The logged row of a finished epoch: train metrics averaged over ranks, validation metrics."""
    train_loss, train_acc = (t.item() for t in dist.scaled_all_reduce(
        [torch.tensor(pos.loss_sum / pos.seen), torch.tensor(pos.correct / pos.seen * 100)]))
    val_loss, val_acc = evaluate(s.model, splits.val_x, splits.val_y, s.prep, cfg.trainer.precision,
                                 int(cfg.trainer.eval_batch_size))
    images = pos.seen * dist.world_size()
    return {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
            "val_acc": val_acc, "lr": s.optimizer.param_groups[0]["lr"], "epoch_time_s": pos.elapsed_s,
            "throughput_img_s": images / pos.elapsed_s}


def log_epoch(logger, row: dict[str, float], epochs: int) -> None:
    logger.log_metrics({("train/" + k[len("train_"):] if k.startswith("train_") else k): v
                        for k, v in row.items() if k != "epoch"}, step=row["epoch"])
    log.info("epoch %d/%d  train_loss %.4f  train_acc %.2f  val_loss %.4f  val_acc %.2f  lr %.4g  %.1fs "
             "(%.0f img/s)", row["epoch"], epochs, row["train_loss"], row["train_acc"], row["val_loss"],
             row["val_acc"], row["lr"], row["epoch_time_s"], row["throughput_img_s"])


def save_checkpoint(cfg: DictConfig, s: Setup, splits: Splits, progress: Progress, out_dir: Path, logger) -> None:
    progress.close_segment()
    if cfg.trainer.checkpoint and dist.is_main():
        save_atomic(training_state(cfg, s.model, s.optimizer, s.scheduler, s.gen, progress, splits.mean,
                                   splits.std, getattr(logger, "run_id", None)), out_dir / "checkpoints" / "last.pt")


def fit(cfg: DictConfig, model: torch.nn.Module, device: torch.device, logger, out_dir: Path,
        state: dict | None = None, stop: preempt.Preemption = preempt.NONE) -> dict[str, Any]:
    """Train the built ``model`` on ``cfg.data``; return final metrics (test split evaluated once, at the end).

    Continues from ``state`` (an already-read checkpoint of this config) when given. ``stop`` ends the run
    at the next step after SIGTERM/SIGUSR1, with a checkpoint of that exact position.
    """
    t_setup = time.perf_counter()
    splits = setup_data(cfg, device)
    stats = _complexity(model, tuple(splits.train_x.shape[1:]))
    s = setup_training(cfg, model, splits, device)
    progress = restore(state, s.model, s.optimizer, s.scheduler, s.gen) if state else Progress()
    if state:
        log.info("resumed from %s %s", out_dir / "checkpoints" / "last.pt", progress.where())
        if progress.resume_note:
            log.warning("%s", progress.resume_note)
    progress.open_segment(provenance.environment(device))
    setup_s = time.perf_counter() - t_setup
    with stop.deferred():
        while progress.epoch < s.epochs:
            pos = train_epoch(cfg, s, splits, progress, stop)
            if pos.step < s.steps_per_epoch:  # a signal arrived: save this exact position and stop
                progress.partial = pos
                save_checkpoint(cfg, s, splits, progress, out_dir, logger)
                stop.stop(progress.where())
            row = epoch_row(cfg, s, splits, pos, progress.epoch)
            _check_finite_weights(cfg, s.model, row["epoch"])
            progress.epoch, progress.train_time_s = row["epoch"], progress.train_time_s + pos.elapsed_s
            progress.images_seen += pos.seen * dist.world_size()
            progress.history.append(row)
            log_epoch(logger, row, s.epochs)
            save_checkpoint(cfg, s, splits, progress, out_dir, logger)
            if stop.requested(device) and progress.epoch < s.epochs:
                stop.stop(progress.where())
    progress.close_segment()
    return final_metrics(cfg, s, splits, progress, stats, setup_s, out_dir, logger)


def final_metrics(cfg: DictConfig, s: Setup, splits: Splits, progress: Progress, stats: dict, setup_s: float,
                  out_dir: Path, logger) -> dict[str, Any]:
    """Test metrics (evaluated once), the last epoch's, cost, timing, and every configured evaluator's."""
    precision, eval_bs = cfg.trainer.precision, int(cfg.trainer.eval_batch_size)
    test_loss, test_acc = evaluate(s.model, splits.test_x, splits.test_y, s.prep, precision, eval_bs)
    last, t = (progress.history[-1] if progress.history else {}), progress.train_time_s
    metrics = {"test_acc": test_acc, "test_loss": test_loss, "val_acc": last.get("val_acc", float("nan")),
               "val_loss": last.get("val_loss", float("nan")), "train_loss": last.get("train_loss"),
               "epochs": s.epochs, "train_time_s": t, "setup_time_s": setup_s,
               "train_throughput_img_s": progress.images_seen / t if t else float("nan"),
               "train_size": len(splits.train_x), "val_size": len(splits.val_x), "test_size": len(splits.test_x),
               **stats, "history": progress.history, "segments": progress.segments}
    ctx = {"model": s.model, "prep": s.prep, "precision": precision, "test_x": splits.test_x,
           "test_y": splits.test_y, "val_x": splits.val_x, "val_y": splits.val_y, "out_dir": out_dir,
           "logger": logger, "seed": int(cfg.seed), "eval_batch_size": eval_bs}
    for name, evaluator in (cfg.get("evaluators") or {}).items():
        extra = instantiate(evaluator)(**ctx)
        log.info("evaluator %s: %s", name, extra)
        metrics.update(extra)
    return metrics


def _check_finite_weights(cfg: DictConfig, model: torch.nn.Module, epoch: int) -> None:
    if not all(t.isfinite().all() for t in model.state_dict().values() if t.is_floating_point()):
        raise NonFiniteLossError(f"model weights became non-finite in epoch {epoch} (not checkpointed); "
                                 f"{_nan_hint(cfg)}")


def _nan_hint(cfg: DictConfig) -> str:
    hint = f"lower optim.lr (now {cfg.optim.lr})"
    return hint + (" or use trainer.precision=fp32" if cfg.trainer.precision == "bf16" else "")


def _complexity(model: torch.nn.Module, input_size: tuple[int, ...]) -> dict[str, int]:
    from models.complexity import profile

    p = profile(model, input_size)
    return {"params": int(p["params"]), "macs": int(p["macs"])}
