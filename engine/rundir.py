"""A run dir belongs to one config: what it already holds is skipped or resumed only for that config.

The owner of a run dir is the training config (``engine.records.training_config``; logging, paths,
threads and progress do not count) stored with its ``metrics.json`` and ``checkpoints/last.pt``. A
rerun with another config is refused with one line naming the keys that differ; the old results and
checkpoint are left as they are (Hydra has already rewritten ``.hydra/`` by then; ``metrics.json`` keeps
its own ``training_config``).
The refusal is also left in ``refused.json`` (read by the sweep summary) until the next attempt.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from engine import records
from engine.checkpoint import write_json_atomic
from engine.distributed import is_main

REFUSED = "refused.json"


class RunDirConflict(RuntimeError):
    """The run dir holds the results or checkpoint of another config."""


def read_metrics(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def check_checkpoint(cfg: DictConfig, out_dir: Path, state: dict) -> None:
    """Refuse to resume a checkpoint of another config (older checkpoints: judged by their resolved config)."""
    owner = state.get("training_config") or records.training_config(OmegaConf.create(state["config"]))
    check_owner(cfg, out_dir, "checkpoints/last.pt", state.get("config_hash"), owner)


def check_owner(cfg: DictConfig, out_dir: Path, what: str, owner_hash: str | None,
                owner: dict[str, Any] | None) -> None:
    """Raise ``RunDirConflict`` unless ``what`` in ``out_dir`` was made with ``cfg``'s training config
    (same hash, or, where no hash was stored, the same training config)."""
    mine = records.training_config(cfg)
    same = owner_hash == records.config_hash(cfg) if owner_hash else owner == mine
    if same:
        return
    if owner is not None:
        keys = ", ".join(records.config_diff(owner, mine)) or "nothing visible: the code that hashes it changed"
    elif owner_hash:
        keys = f"config hash {owner_hash}, this one is {records.config_hash(cfg)}"
    else:
        keys = "unknown: it records no config (written before run dirs were tied to one)"
    msg = (f"{out_dir / what} belongs to another config (differs in {keys}); its results are untouched: "
           f"use a new run dir (hydra.run.dir=... or hydra.sweep.dir=...) or delete {out_dir} to rerun it")
    if is_main():
        write_json_atomic({"status": "refused", "error": msg}, out_dir / REFUSED)
    raise RunDirConflict(msg)


def claim(cfg: DictConfig, out_dir: Path, load) -> tuple[dict[str, Any] | None, dict | None]:
    """``(metrics, None)`` to skip a finished run of this config (``trainer.skip_finished``), else
    ``(None, state)`` with the checkpoint to resume from (None: start afresh).

    ``load(path)`` reads a checkpoint. Whatever the flags, an ``ok`` or ``interrupted`` metrics.json or a
    checkpoint of another config is refused (``RunDirConflict``), so nothing of it is overwritten; a
    ``failed`` run's metrics.json may be replaced.
    """
    if is_main():
        (out_dir / REFUSED).unlink(missing_ok=True)  # an earlier refusal; written again if this one is refused
    metrics, ckpt = read_metrics(out_dir), out_dir / "checkpoints" / "last.pt"
    state = load(ckpt) if cfg.task == "train" and ckpt.exists() else None
    if state is not None:
        check_checkpoint(cfg, out_dir, state)
    if metrics and metrics.get("status") in ("ok", "interrupted"):
        skip = metrics["status"] == "ok" and cfg.trainer.get("skip_finished")
        # a metrics.json older than config hashes is judged by its checkpoint; without one, it can only
        # be refused for a skip (a rerun replaces it with metrics that name their own config)
        if metrics.get("config_hash") or (state is None and skip):
            check_owner(cfg, out_dir, "metrics.json", metrics.get("config_hash"), metrics.get("training_config"))
        if skip:
            return metrics, None
    return None, state if cfg.trainer.resume else None
