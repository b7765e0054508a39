"""One Hydra job: validate, build the logger, run a probe or ``fit``, write ``metrics.json``, finish."""
from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from engine import distributed as dist
from engine.checkpoint import load_checkpoint, write_json_atomic
from engine.logger import NullLogger
from engine.loop import NonFiniteLossError, fit, resolve_device, seed_everything

log = logging.getLogger(__name__)


def _make_logger(cfg: DictConfig, out_dir: Path):
    if not dist.is_main() or cfg.logger is None or not cfg.logger.get("_target_"):
        return NullLogger()
    ckpt = out_dir / "checkpoints" / "last.pt"
    run_id = None
    if cfg.trainer.resume and ckpt.exists():
        try:
            run_id = load_checkpoint(ckpt).get("wandb_id")
        except RuntimeError:
            run_id = None
    plain = OmegaConf.to_container(cfg, resolve=True)
    return instantiate(cfg.logger, _partial_=True)(save_dir=str(out_dir), run_config=plain, run_id=run_id)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run the job described by ``cfg`` and return its final metrics (also in ``metrics.json``)."""
    from engine.validate import validate_config

    validate_config(cfg)
    out_dir = Path(cfg.paths.output_dir)
    dist.init()
    seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    device = resolve_device(str(cfg.trainer.device))
    torch.set_float32_matmul_precision("high")
    logger = _make_logger(cfg, out_dir)
    t0 = time.time()
    metrics: dict[str, Any] = {"status": "running"}
    try:
        if cfg.task == "probe":
            metrics = dict(instantiate(cfg.probe)(out_dir=str(out_dir), logger=logger))
        else:
            metrics = fit(cfg, device, logger, out_dir)
        metrics["status"] = "ok"
    except NonFiniteLossError as e:
        metrics = {"status": "failed", "error": str(e)}
        raise
    except BaseException as e:
        metrics = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
        raise
    finally:
        metrics.update(_bookkeeping(cfg, device, time.time() - t0))
        if dist.is_main():
            write_json_atomic(metrics, out_dir / "metrics.json")
            logger.set_summary({k: v for k, v in metrics.items() if isinstance(v, (int, float, str))})
            logger.finish(exit_code=0 if metrics["status"] == "ok" else 1)
        dist.cleanup()
    return metrics


def _bookkeeping(cfg: DictConfig, device: torch.device, wall: float) -> dict[str, Any]:
    return {"seed": int(cfg.seed), "data": cfg.data.name, "model": cfg.model.get("name", "n/a"),
            "task": cfg.task, "experiment": cfg.get("experiment_name") or "default",
            "variant": cfg.get("variant") or "", "precision": cfg.trainer.precision, "device": str(device),
            "hardware": f"{platform.machine()} {platform.processor() or ''} x{torch.get_num_threads()} threads"
            + (f" {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""),
            "torch": torch.__version__, "wall_time_s": wall,
            "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
