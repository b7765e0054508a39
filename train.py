"""Entry point: ``python train.py [hydra overrides]`` (see README.md and configs/train.yaml)."""
from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

log = logging.getLogger("train")


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Run one job; return the metric a sweeper optimises (``optimized_metric``)."""
    from engine.job import train
    from engine.data import DataUnavailableError
    from engine.validate import ConfigError

    try:
        metrics = train(cfg)
    except (ConfigError, DataUnavailableError) as e:  # one clear line, no traceback
        kind = "config error" if isinstance(e, ConfigError) else "data error"
        log.error("%s: %s", kind, e)
        print(f"{kind}: {e}", file=sys.stderr)
        sys.exit(2)
    log.info("final: %s", {k: v for k, v in metrics.items() if k in ("test_acc", "val_acc", "params", "macs")})
    value = metrics.get(cfg.get("optimized_metric") or "")
    return float(value) if isinstance(value, (int, float)) else None


if __name__ == "__main__":
    main()
