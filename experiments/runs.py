"""Collect trained runs from their run records (``engine.records``) into flat rows for the report.

``collect(paths)`` reads every record (``*.json`` with a ``config_hash``) under ``paths`` (default
``results/records``) and returns ``(ok, failed)`` rows: the config keys the report groups by
(``CONFIG_KEYS``, read from the record's resolved training config), the final metrics, and the provenance
(git commit and dirty flag, hardware, date, the overrides that rerun the run, the record's path). A run resumed
over several segments lists each commit and hardware it ran with ("; "-separated, first use first); a run whose
earlier segments went unrecorded (resumed before records kept segments) is marked ``partial_provenance``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]

# report key -> dotted key in the record's training config
CONFIG_KEYS = {"model": "model.name", "conv": "model.conv", "filt_size": "model.filt_size",
               "downsample": "model.downsample", "kernel_size": "model.kernel_size", "alpha": "model.alpha",
               "augment": "data.augment", "dataset": "data.name", "num_classes": "data.num_classes",
               "train_subset": "data.train_subset", "epochs": "trainer.epochs", "precision": "trainer.precision",
               "lr": "optim.lr", "weight_decay": "optim.weight_decay", "label_smoothing": "trainer.label_smoothing",
               "batch_size": "data.batch_size"}


def _is_record(obj: Any) -> bool:
    return isinstance(obj, dict) and "config_hash" in obj and "config" in obj and "status" in obj


def read_records(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Every run record under ``paths`` (files or folders), each with its ``path``."""
    records = []
    for root in map(Path, paths):
        for path in sorted([root] if root.is_file() else root.rglob("*.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if _is_record(rec):
                records.append({**rec, "path": _shown(path)})
    return records


def _shown(path: Path) -> str:
    """A record's path relative to the checkout (no machine paths in generated results)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


SEP = "; "  # between the commits / hardware of a run's segments
UNSEGMENTED = "resumed before segments were recorded: code and hardware of the last segment only"


def _commit(sha: str | None, dirty: bool | None) -> str:
    return (sha or "unknown")[:10] + ("+dirty" if dirty else "")


def partial_provenance(rec: dict[str, Any]) -> bool:
    """Whether part of the run ran before segments were recorded: its first segment is a resume, or it has no
    segments and its process ran shorter than its training."""
    segs, m = rec.get("segments") or [], rec.get("metrics") or {}
    if segs:
        return segs[0].get("from") != "start"
    wall, trained = m.get("wall_time_s"), m.get("train_time_s")
    return isinstance(wall, (int, float)) and isinstance(trained, (int, float)) and wall < trained


def provenance(rec: dict[str, Any]) -> dict[str, Any]:
    """The commits and hardware a record's run trained with, over all its segments; ``segments`` (their number),
    ``partial_provenance`` and ``notes`` (its segments' notes, e.g. a data generator reseeded on another device)."""
    segs, git = rec.get("segments") or [], rec.get("git") or {}
    if segs:
        commits = [_commit(s.get("git_commit"), s.get("git_dirty")) for s in segs]
        hardware = [str(s.get("hardware") or "unknown") for s in segs]
    else:
        commits, hardware = [_commit(git.get("commit"), git.get("dirty"))], [str(rec.get("hardware") or "unknown")]
    notes = [s["note"] for s in segs if s.get("note")]  # what a resume could not restore (engine.state)
    return {"git_commit": SEP.join(dict.fromkeys(commits)), "hardware": SEP.join(dict.fromkeys(hardware)),
            "segments": len(segs), "partial_provenance": partial_provenance(rec), "notes": SEP.join(notes)}


def run_wall_s(rec: dict[str, Any]) -> float:
    """Wall time of the whole run: the sum over its segments; for a run resumed before segments were recorded, at
    least its training time (its ``wall_time_s`` is the last process's only)."""
    m, segs = rec.get("metrics") or {}, rec.get("segments") or []
    if segs and not partial_provenance(rec):
        return float(sum(s.get("wall_s") or 0.0 for s in segs))
    return max(float(m.get("wall_time_s") or 0.0), float(m.get("train_time_s") or 0.0))


def to_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A flat row: config keys, metrics, provenance."""
    cfg = OmegaConf.create(rec["config"])
    row = {k: OmegaConf.select(cfg, v, default=None) for k, v in CONFIG_KEYS.items()}
    row.update(rec["metrics"])
    row.update({"experiment": rec["experiment"], "profile": rec["profile"], "variant": rec["variant"],
                "seed": rec["seed"], "status": rec["status"], "config_hash": rec["config_hash"],
                "record": rec["path"], "overrides": " ".join(rec.get("overrides", [])), **provenance(rec),
                "date": rec.get("date") or "",
                "backfilled": bool(rec.get("backfilled")), "artifacts": rec.get("artifacts") or {},
                "history": rec.get("history") or []})
    return row


def collect(paths: list[str | Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ok rows, failed rows) of the trained runs recorded under ``paths``."""
    rows = [to_row(r) for r in read_records(paths) if r["config"].get("task", "train") == "train"]
    return [r for r in rows if r["status"] == "ok"], [r for r in rows if r["status"] != "ok"]
