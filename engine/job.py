"""One Hydra job: claim the run dir, validate (building the model), build the logger, run a probe or ``fit``,
write ``metrics.json`` and the run record, finish."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from engine import distributed as dist
from engine import preempt, provenance, records, rundir
from engine.checkpoint import CheckpointError, load_checkpoint, remove_stale_temps, write_json_atomic
from engine.data import DataUnavailableError
from engine.logger import NullLogger
from engine.inference import resolve_eval_batch_size, resolve_precision
from engine.loop import NonFiniteLossError, fit, resolve_device, seed_everything
from engine.preempt import Preempted
from engine.rundir import RunDirConflict
from engine.validate import ConfigError

log = logging.getLogger(__name__)


def _load_checkpoint(ckpt: Path) -> dict:
    """Read ``checkpoints/last.pt`` once, before any data is loaded (stale temp files of a killed save go)."""
    for tmp in remove_stale_temps(ckpt) if dist.is_main() else ():
        log.warning("removed %s, a partial checkpoint of a killed save", tmp)
    try:
        return load_checkpoint(ckpt)
    except CheckpointError as e:
        raise CheckpointError(f"{e}; nothing was changed: delete it to restart this run from scratch, or "
                              f"choose another run dir (hydra.run.dir=...)") from None


def _make_logger(cfg: DictConfig, out_dir: Path, run_id: str | None):
    if not dist.is_main() or cfg.logger is None or not cfg.logger.get("_target_"):
        return NullLogger()
    plain = OmegaConf.to_container(cfg, resolve=True)
    return instantiate(cfg.logger, _partial_=True)(save_dir=str(out_dir), run_config=plain, run_id=run_id)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run the job described by ``cfg`` and return its final metrics (also in ``metrics.json``).

    A run dir holding another config's results is refused before anything is written (``engine.rundir``).
    Then ``metrics.json`` is written whatever happens: ``status`` is ``ok``; ``failed`` with ``error``;
    or ``interrupted`` (Ctrl-C, or SIGTERM/SIGUSR1 after a checkpoint at a safe point, see
    ``engine.preempt``). Exceptions are re-raised; the wandb run, if any, is finished with exit code 1.
    """
    from engine.validate import validate_config

    dist.init()
    dist.quiet_other_ranks()
    out_dir = Path(dist.broadcast_str(str(cfg.paths.output_dir)))  # rank 0's, should the timestamps differ
    resolve_auto(cfg)  # before hashing: the hash holds what auto means
    records.git_state()  # the code as the run starts (cached), not after it wrote into a tracked dir
    recorded = _recorded(cfg)
    if recorded is not None:
        log.info("skipping: config %s already has a record, %s (trainer.skip_recorded=true)",
                 recorded["config_hash"], recorded["path"])
        dist.cleanup()
        return recorded["metrics"]
    done, state = rundir.claim(cfg, out_dir, _load_checkpoint)
    if done is not None:
        log.info("skipping %s: this config finished there before (trainer.skip_finished=true)", out_dir)
        dist.cleanup()
        return done
    if cfg.trainer.get("threads"):
        torch.set_num_threads(int(cfg.trainer.threads))
    t0, device, logger, stop = time.time(), None, NullLogger(), preempt.Preemption().install()
    metrics: dict[str, Any] = {"status": "running"}
    try:
        seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
        model = validate_config(cfg)  # built once, after seeding: these are the weights fit trains
        device = resolve_device(str(cfg.trainer.device))
        torch.set_float32_matmul_precision("high")
        logger = _make_logger(cfg, out_dir, state.get("wandb_id") if state else None)
        if cfg.task == "probe":
            metrics = dict(instantiate(cfg.probe)(out_dir=str(out_dir), logger=logger))
        else:
            metrics = fit(cfg, model, device, logger, out_dir, state=state, stop=stop)
        metrics["status"] = "ok"
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        metrics = {"status": status, "error": describe_error(e)}
        raise
    finally:
        stop.uninstall()
        metrics.update(_bookkeeping(cfg, device, time.time() - t0))
        if dist.is_main():
            write_json_atomic(metrics, out_dir / "metrics.json")
            _write_record(cfg, metrics)
            logger.set_summary({k: v for k, v in metrics.items() if isinstance(v, (int, float, str))})
            logger.finish(exit_code=0 if metrics["status"] == "ok" else 1)
        dist.cleanup()
    return metrics


def resolve_auto(cfg: DictConfig) -> None:
    """Replace ``trainer.precision=auto`` and ``trainer.eval_batch_size=auto`` by what they mean on the configured
    device, so configs, metrics and hashes say it (an unusable device is left for validation to report in one
    line)."""
    if "auto" not in (cfg.trainer.precision, cfg.trainer.eval_batch_size):
        return
    try:
        device = resolve_device(str(cfg.trainer.device))
    except RuntimeError:
        return
    for key, resolve in (("precision", resolve_precision), ("eval_batch_size", resolve_eval_batch_size)):
        if cfg.trainer[key] == "auto":
            cfg.trainer[key] = resolve("auto", device)
            log.info("trainer.%s=auto -> %s on %s", key, cfg.trainer[key], device)


def _recorded(cfg: DictConfig) -> dict[str, Any] | None:
    """The ``ok`` run record of this exact training config when ``trainer.skip_recorded`` is set."""
    if cfg.task != "train" or not cfg.trainer.get("skip_recorded"):
        return None
    return records.find_record(cfg.paths.records_dir, records.config_hash(cfg))


def _write_record(cfg: DictConfig, metrics: dict[str, Any]) -> None:
    """A finished (ok or failed) trained run leaves its record under ``paths.records_dir``."""
    if cfg.task != "train" or not cfg.trainer.get("record", True) or metrics["status"] not in ("ok", "failed"):
        return
    record = records.make_record(cfg, metrics, metrics.get("history", []), records.overrides(),
                                 records.small_tables(cfg.paths.output_dir))
    log.info("run record: %s", records.write_record(cfg.paths.records_dir, record, cfg))


def unwrap(e: BaseException) -> BaseException:
    """The exception Hydra's ``instantiate`` wrapped in an ``InstantiationException`` (else ``e``)."""
    from hydra.errors import InstantiationException

    while isinstance(e, InstantiationException) and e.__cause__ is not None:
        e = e.__cause__
    return e


def describe_error(e: BaseException) -> str:
    """One line: the message of an expected failure, ``Type: message`` of anything else."""
    e = unwrap(e)
    expected = (ConfigError, CheckpointError, DataUnavailableError, NonFiniteLossError, RunDirConflict, Preempted)
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text if isinstance(e, expected) else f"{type(e).__name__}: {text}".rstrip(": ")


BOOKKEEPING = ("seed", "wall_time_s", "status")  # numbers every job adds (besides the strings of _bookkeeping)


def _bookkeeping(cfg: DictConfig, device: torch.device | None, wall: float) -> dict[str, Any]:
    probe = cfg.task == "probe"
    return {"seed": cfg.seed, "data": "none" if probe else cfg.data.name,
            "model": "none" if probe else cfg.model.get("name", "n/a"),
            "task": cfg.task, "experiment": records.experiment_of(cfg),
            "variant": "" if probe else cfg.get("variant") or "", "precision": cfg.trainer.precision,
            **provenance.environment(device), "device": str(device if device is not None else cfg.trainer.device),
            "wall_time_s": wall, "config_hash": records.config_hash(cfg),
            "training_config": records.training_config(cfg), "date": provenance.now()}
