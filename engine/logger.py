"""Experiment loggers: ``WandbLogger`` (offline by default) and ``NullLogger``.

Both write nothing to the terminal beyond Python logging; the training loop and probes use only
this interface, never ``wandb`` directly, so ``logger=none`` runs need no wandb at all.
"""
from __future__ import annotations

import csv
import logging
import os
from typing import Any

log = logging.getLogger(__name__)


class NullLogger:
    """Logs nothing (``logger=none``); keeps the same interface."""

    run_id: str | None = None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_image(self, key: str, path: str) -> None: ...
    def log_table(self, key: str, csv_path: str) -> None: ...
    def set_summary(self, metrics: dict[str, Any]) -> None: ...
    def finish(self, exit_code: int = 0) -> None: ...


class WandbLogger(NullLogger):
    """One wandb run per Hydra job, grouped by experiment, tagged with variant and seed.

    Args:
        project: wandb project.
        mode: ``offline`` (default; sync later with ``wandb sync``), ``online`` or ``disabled``.
        save_dir: the Hydra run dir; wandb writes ``save_dir/wandb/offline-run-*``.
        run_config: the resolved config as a plain dict.
        run_id: resume this run (the id is stored in the checkpoint).
        conv: the model's conv kind; added to ``name`` unless already one of its ``-`` parts.
        init_timeout: seconds ``mode=online`` waits for the server before logging offline instead
            (``+logger.init_timeout=60`` on a slow link).
    """

    def __init__(self, project: str, mode: str = "offline", save_dir: str = ".", name: str | None = None,
                 group: str | None = None, tags: list[str] | None = None, run_config: dict | None = None,
                 run_id: str | None = None, entity: str | None = None, init_timeout: float = 10.0,
                 conv: str | None = None):
        import wandb

        name = run_name(name, conv)
        self._wandb = wandb
        settings = wandb.Settings(init_timeout=init_timeout, silent=True, console="off")
        kwargs = dict(project=project, entity=entity, name=name, group=group, tags=list(tags or []),
                      config=run_config, dir=save_dir, id=run_id, resume="allow" if run_id else None,
                      settings=settings, reinit="finish_previous")
        if mode == "online" and not (os.environ.get("WANDB_API_KEY") or _has_netrc_key()):
            log.warning("wandb: logger.mode=online but no API key is configured; logging offline instead "
                        "(sync later with `wandb sync`)")
            mode = "offline"
        try:
            self.run = wandb.init(mode=mode, **kwargs)
        except Exception as e:  # no network / auth failure: fail fast to offline, never hang
            if mode != "online":
                raise
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            log.warning("wandb: online init failed within %gs (%s); logging offline instead (sync later with "
                        "`wandb sync`)", init_timeout, first)
            self.run = wandb.init(mode="offline", **kwargs)
        self.run_id = self.run.id

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.run.log(metrics, step=step)

    def log_image(self, key: str, path: str) -> None:
        self.run.log({key: self._wandb.Image(path)})

    def log_table(self, key: str, csv_path: str) -> None:
        """Log a CSV as a ``wandb.Table``; each column is numeric only if every non-empty cell is a number."""
        with open(csv_path, newline="") as f:
            header, *rows = list(csv.reader(f))
        self.run.log({key: self._wandb.Table(columns=header, data=_typed_columns(rows))})

    def set_summary(self, metrics: dict[str, Any]) -> None:
        self.run.summary.update(metrics)

    def finish(self, exit_code: int = 0) -> None:
        self.run.finish(exit_code=exit_code)


def run_name(name: str | None, conv: str | None) -> str | None:
    """``resnet20-seed0`` with conv ``c2`` -> ``resnet20-c2-seed0`` (names that hold the kind stay as they are)."""
    if not name or not conv or conv in name.split("-"):
        return name
    head, sep, seed = name.rpartition("-seed")
    return f"{head}-{conv}{sep}{seed}" if sep else f"{name}-{conv}"


def _typed_columns(rows: list[list[str]]) -> list[list[Any]]:
    """The rows with one type per column, as ``wandb.Table`` requires: numbers where every non-empty cell of
    a column parses (int if all are ints), else the text as written; empty cells become None."""
    return [list(row) for row in zip(*(_column(list(cells)) for cells in zip(*rows)))]


def _column(cells: list[str]) -> list[Any]:
    for kind in (int, float):
        try:
            return [kind(c) if c.strip() else None for c in cells]
        except ValueError:
            continue
    return [c if c.strip() else None for c in cells]


def _has_netrc_key() -> bool:
    import netrc

    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
