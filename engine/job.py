"""One Hydra job: validate, build the logger, run a probe or ``fit``, write ``metrics.json``, finish."""
from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from engine import distributed as dist
from engine.checkpoint import CheckpointError, load_checkpoint, remove_stale_temps, write_json_atomic
from engine.data import DataUnavailableError
from engine.logger import NullLogger
from engine import records
from engine.loop import NonFiniteLossError, fit, resolve_device, resolve_precision, seed_everything
from engine.validate import ConfigError

log = logging.getLogger(__name__)


def _resume_state(cfg: DictConfig, out_dir: Path) -> dict | None:
    """Read and check ``checkpoints/last.pt`` once, before any data is loaded (None: start afresh)."""
    ckpt = out_dir / "checkpoints" / "last.pt"
    for tmp in remove_stale_temps(ckpt) if dist.is_main() else ():
        log.warning("removed %s, a partial checkpoint of a killed save", tmp)
    if not (cfg.trainer.resume and ckpt.exists()):
        return None
    try:
        state = load_checkpoint(ckpt)
    except CheckpointError as e:
        raise CheckpointError(f"{e}; nothing was changed: delete it to restart this run from scratch, or "
                              f"choose another run dir (hydra.run.dir=...)") from None
    log.info("resuming %s from epoch %d", out_dir, state["epoch"])
    return state


def _make_logger(cfg: DictConfig, out_dir: Path, run_id: str | None):
    if not dist.is_main() or cfg.logger is None or not cfg.logger.get("_target_"):
        return NullLogger()
    plain = OmegaConf.to_container(cfg, resolve=True)
    return instantiate(cfg.logger, _partial_=True)(save_dir=str(out_dir), run_config=plain, run_id=run_id)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run the job described by ``cfg`` and return its final metrics (also in ``metrics.json``).

    ``metrics.json`` is written whatever happens: ``status`` is ``ok``, or ``failed`` with ``error``
    (the exception is re-raised; the wandb run, if any, is finished with exit code 1).
    """
    from engine.validate import validate_config

    out_dir = Path(cfg.paths.output_dir)
    done = _finished(cfg, out_dir)
    if done is not None:
        log.info("skipping %s: finished before (trainer.skip_finished=true)", out_dir)
        return done
    recorded = _recorded(cfg)
    if recorded is not None:
        log.info("skipping: config %s already has a record, %s (trainer.skip_recorded=true)",
                 recorded["config_hash"], recorded["path"])
        return recorded["metrics"]
    if cfg.trainer.get("threads"):
        torch.set_num_threads(int(cfg.trainer.threads))
    t0, device, logger = time.time(), None, NullLogger()
    metrics: dict[str, Any] = {"status": "running"}
    try:
        validate_config(cfg)
        dist.init()
        seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
        device = resolve_device(str(cfg.trainer.device))
        _resolve_precision(cfg, device)
        torch.set_float32_matmul_precision("high")
        state = _resume_state(cfg, out_dir) if cfg.task != "probe" else None
        logger = _make_logger(cfg, out_dir, state.get("wandb_id") if state else None)
        if cfg.task == "probe":
            metrics = dict(instantiate(cfg.probe)(out_dir=str(out_dir), logger=logger))
        else:
            metrics = fit(cfg, device, logger, out_dir, resume_state=state)
        metrics["status"] = "ok"
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        metrics = {"status": status, "error": describe_error(e)}
        raise
    finally:
        metrics.update(_bookkeeping(cfg, device, time.time() - t0))
        if dist.is_main():
            write_json_atomic(metrics, out_dir / "metrics.json")
            _write_record(cfg, metrics)
            logger.set_summary({k: v for k, v in metrics.items() if isinstance(v, (int, float, str))})
            logger.finish(exit_code=0 if metrics["status"] == "ok" else 1)
        dist.cleanup()
    return metrics


def _resolve_precision(cfg: DictConfig, device: torch.device) -> None:
    """Replace ``trainer.precision=auto`` by what it means on ``device``, so configs, metrics and hashes say it."""
    if cfg.trainer.precision == "auto":
        cfg.trainer.precision = resolve_precision("auto", device)
        log.info("trainer.precision=auto -> %s on %s", cfg.trainer.precision, device)


def _recorded(cfg: DictConfig) -> dict[str, Any] | None:
    """The ``ok`` run record of this exact training config when ``trainer.skip_recorded`` is set."""
    if cfg.task != "train" or not cfg.trainer.get("skip_recorded"):
        return None
    try:
        _resolve_precision(cfg, resolve_device(str(cfg.trainer.device)))  # the hash holds what auto means
    except RuntimeError:
        return None  # an unusable device: validation reports it in one line
    return records.find_record(cfg.paths.records_dir, records.config_hash(cfg))


def _write_record(cfg: DictConfig, metrics: dict[str, Any]) -> None:
    """A finished (ok or failed) trained run leaves its record under ``paths.records_dir``."""
    if cfg.task != "train" or not cfg.trainer.get("record", True) or metrics["status"] not in ("ok", "failed"):
        return
    record = records.make_record(cfg, metrics, metrics.get("history", []), records.overrides(),
                                 records.small_tables(cfg.paths.output_dir))
    log.info("run record: %s", records.write_record(cfg.paths.records_dir, record, cfg))


def _finished(cfg: DictConfig, out_dir: Path) -> dict[str, Any] | None:
    """The metrics of an earlier successful run in ``out_dir`` when ``trainer.skip_finished`` is set."""
    path = out_dir / "metrics.json"
    if not (cfg.trainer.get("skip_finished") and path.exists()):
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return metrics if metrics.get("status") == "ok" else None


def describe_error(e: BaseException) -> str:
    """One line: the message of an expected failure, ``Type: message`` of anything else."""
    expected = (ConfigError, CheckpointError, DataUnavailableError, NonFiniteLossError)
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text if isinstance(e, expected) else f"{type(e).__name__}: {text}".rstrip(": ")


def _bookkeeping(cfg: DictConfig, device: torch.device | None, wall: float) -> dict[str, Any]:
    gpu = f", {torch.cuda.get_device_name(device)}" if device is not None and device.type == "cuda" else ""
    probe = cfg.task == "probe"
    return {"seed": cfg.seed, "data": "none" if probe else cfg.data.name,
            "model": "none" if probe else cfg.model.get("name", "n/a"),
            "task": cfg.task, "experiment": cfg.get("experiment_name") or "default",
            "variant": "" if probe else cfg.get("variant") or "", "precision": cfg.trainer.precision,
            "device": str(device if device is not None else cfg.trainer.device),
            "hardware": f"{_cpu_name()} ({os.cpu_count()} cores), {torch.get_num_threads()} thread(s){gpu}",
            "torch": torch.__version__, "wall_time_s": wall, "config_hash": records.config_hash(cfg),
            "git_commit": records.git_state()["commit"], "git_dirty": records.git_state()["dirty"],
            "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


def _cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else the platform's machine name."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine() or platform.processor() or "unknown CPU"
