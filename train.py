"""Entry point: ``python train.py [hydra overrides]`` (see README.md and configs/train.yaml).

Single run: an expected failure (bad config, missing data, unusable checkpoint, a run dir of another
config, NaN loss) prints one line to stderr and exits non-zero (2, or 1 for a diverged run); SIGTERM or
SIGUSR1 checkpoint the run and exit with 128 + the signal number (rerun the command to resume);
anything else raises with its traceback.
Sweep (``-m``): a failing job is logged to its own ``train.log`` and the sweep goes on;
``engine.callbacks.SweepSummary`` then prints which jobs failed and exits non-zero.
"""
from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

log = logging.getLogger("train")


def _one_line_failure(e: Exception) -> tuple[str, int] | None:
    """(label, exit code) of an expected failure that needs no traceback; None otherwise."""
    from engine.checkpoint import CheckpointError
    from engine.data import DataUnavailableError
    from engine.loop import NonFiniteLossError
    from engine.rundir import RunDirConflict
    from engine.validate import ConfigError

    kinds = ((ConfigError, "config error", 2), (DataUnavailableError, "data error", 2),
             (RunDirConflict, "run dir error", 2), (CheckpointError, "checkpoint error", 2),
             (NonFiniteLossError, "training failed", 1))
    return next(((label, code) for cls, label, code in kinds if isinstance(e, cls)), None)


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _log_to_file_only(message: str) -> None:
    """Write ``message`` to train.log but not to the console (where stderr shows it once)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _probe_keys(metrics: dict) -> list[str]:
    """The numbers a probe returned (its metrics without the bookkeeping every job adds)."""
    from engine.job import BOOKKEEPING

    return [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k not in BOOKKEEPING]


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Run one job; return the metric a sweeper optimises (``optimized_metric``)."""
    from engine.job import describe_error, train, unwrap
    from engine.preempt import Preempted

    try:
        metrics = train(cfg)
    except Preempted as e:  # the checkpoint and metrics.json (status: interrupted) are written
        _log_to_file_only(f"interrupted: {e}")
        print(f"interrupted: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except Exception as wrapped:
        e = unwrap(wrapped)  # Hydra's InstantiationException around e.g. DataUnavailableError
        known = _one_line_failure(e)
        if _in_sweep():  # keep the sweep going; metrics.json already says status: failed
            log.error("job failed: %s", describe_error(e), exc_info=known is None)
            return None
        if known is None:
            raise
        label, code = known
        _log_to_file_only(f"{label}: {e}")
        print(f"{label}: {e}", file=sys.stderr)
        sys.exit(code)
    keys = ("test_acc", "val_acc", "params", "macs") if cfg.task == "train" else _probe_keys(metrics)
    log.info("final: %s", {k: metrics[k] for k in keys if k in metrics})
    value = metrics.get(cfg.get("optimized_metric") or "")
    return float(value) if isinstance(value, (int, float)) else None


if __name__ == "__main__":
    main()
