"""Entry point: ``python train.py [hydra overrides]`` (see README.md and configs/train.yaml).

Single run: an expected failure (bad config, missing data, unusable checkpoint, NaN loss) prints one
line and exits non-zero (2, or 1 for a diverged run); anything else raises with its traceback.
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
    from engine.validate import ConfigError

    kinds = ((ConfigError, "config error", 2), (DataUnavailableError, "data error", 2),
             (CheckpointError, "checkpoint error", 2), (NonFiniteLossError, "training failed", 1))
    return next(((label, code) for cls, label, code in kinds if isinstance(e, cls)), None)


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Run one job; return the metric a sweeper optimises (``optimized_metric``)."""
    from engine.job import describe_error, train

    try:
        metrics = train(cfg)
    except Exception as e:
        known = _one_line_failure(e)
        if _in_sweep():  # keep the sweep going; metrics.json already says status: failed
            log.error("job failed: %s", describe_error(e), exc_info=known is None)
            return None
        if known is None:
            raise
        label, code = known
        log.error("%s: %s", label, e)
        print(f"{label}: {e}", file=sys.stderr)
        sys.exit(code)
    log.info("final: %s", {k: v for k, v in metrics.items() if k in ("test_acc", "val_acc", "params", "macs")})
    value = metrics.get(cfg.get("optimized_metric") or "")
    return float(value) if isinstance(value, (int, float)) else None


if __name__ == "__main__":
    main()
