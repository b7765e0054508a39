"""Run records: one small committed JSON per finished trained run, keyed by the config hash.

A record (``results/records/<profile>/<experiment>/<variant>-seed<seed>-<hash>.json``) holds the final
metrics, the per-epoch history, the overrides that rerun it, the config hash, the git commit and dirty
flag, the hardware and the date (of the process that finished the run), the segments a resumed run trained in
(each with its own commit, hardware and times, ``engine.provenance``); never weights. Sweeps skip a config whose
hash already has an ``ok`` record (``trainer.skip_recorded``), so a grid accumulates over sessions and machines, and
``scripts/report.py`` builds RESULTS.md from the records alone.

The hash covers the resolved settings that change what is trained and measured; it leaves out file
layout, logging, labels and execution details (``IGNORED``), and keeps only the last component of each
``_target_`` (``engine.optim.onecycle`` -> ``onecycle``), so moving code between modules keeps it.
"""
from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

SCHEMA = 1
# keys that cannot change a result: file layout, logging, labels, progress, threads, where it runs
IGNORED = ("paths", "logger", "hydra", "tags", "experiment_name", "profile_name", "variant", "optimized_metric",
           "data.root", "data.source.root", "data.source.download", "trainer.device", "trainer.threads",
           "trainer.progress", "trainer.checkpoint", "trainer.resume", "trainer.skip_finished",
           "trainer.skip_recorded", "trainer.record", "trainer.compile", "trainer.deterministic",
           "trainer.eval_batch_size", "probe.records")


def training_config(cfg: DictConfig, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The resolved config without the ``IGNORED`` keys (and the dotted keys in ``drop``), ``_target_`` shortened
    to its last component."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))  # a detached copy
    for key in (*IGNORED, *drop):  # drop before resolving: these are the keys that interpolate hydra/paths
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig) and leaf in node:
            del node[leaf]
    return _short_targets(OmegaConf.to_container(cfg, resolve=True))


def _short_targets(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (v.rsplit(".", 1)[-1] if k == "_target_" and isinstance(v, str) else _short_targets(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_short_targets(v) for v in node]
    return node


def config_hash(cfg: DictConfig) -> str:
    """12 hex digits of the SHA-256 of ``training_config(cfg)`` (canonical JSON)."""
    return digest(training_config(cfg))


def digest(config: dict[str, Any]) -> str:
    """12 hex digits of the SHA-256 of a plain config dict as canonical JSON."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two ``training_config`` dicts."""
    keys = []
    for k in sorted(set(old) | set(new), key=str):
        a, b, name = old.get(k), new.get(k), f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys += config_diff(a, b, name + ".")
        elif a != b:
            keys.append(name)
    return keys


# generated outputs (probe results, RESULTS.md, the README's results block) do not make the code dirty
GENERATED = (":(exclude)results", ":(exclude)RESULTS.md", ":(exclude)README.md")


@lru_cache(maxsize=1)
def git_state(root: str | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding this code (dirty: tracked
    files other than ``GENERATED`` outputs differ from the commit)."""
    root = root or str(Path(__file__).resolve().parents[1])
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *GENERATED],
                                cwd=root, capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def experiment_of(cfg: DictConfig) -> str:
    """The experiment a run is filed under (its record's dir and ``experiment`` field, metrics.json's too)."""
    return str(cfg.get("experiment_name") or "default")


def record_path(records_dir: str | Path, cfg: DictConfig, digest: str) -> Path:
    variant = str(cfg.get("variant") or cfg.model.get("name", "model")).replace("/", "_")
    return (Path(records_dir) / str(cfg.get("profile_name") or "default") / experiment_of(cfg)
            / f"{variant}-seed{cfg.seed}-{digest}.json")


def find_record(records_dir: str | Path, digest: str) -> dict[str, Any] | None:
    """The ``ok`` record with this config hash under ``records_dir``, if any."""
    for path in sorted(Path(records_dir).rglob(f"*-{digest}.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if rec.get("config_hash") == digest and rec.get("status") == "ok":
            rec["path"] = str(path)
            return rec
    return None


def overrides() -> list[str]:
    """The command-line overrides of this Hydra job (``python train.py <overrides>`` reruns it)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [o for o in HydraConfig.get().overrides.task if not o.startswith(("hydra.", "hydra/"))]


MAX_TABLE_BYTES = 16384  # small evaluator tables (e.g. diagonal_stability.csv) travel inside the record


def small_tables(run_dir: str | Path) -> dict[str, list[dict[str, str]]]:
    """The CSV files directly in ``run_dir`` under ``MAX_TABLE_BYTES``, as rows."""
    return {p.name: list(csv.DictReader(open(p))) for p in sorted(Path(run_dir).glob("*.csv"))
            if p.stat().st_size <= MAX_TABLE_BYTES}


def make_record(cfg: DictConfig, metrics: dict[str, Any], history: list[dict], run_overrides: list[str],
                artifacts: dict[str, list[dict]] | None = None) -> dict[str, Any]:
    """The record of one run: everything the report needs, nothing it could not commit."""
    final = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
    return {"schema": SCHEMA, "status": final.pop("status", "ok"), "config_hash": config_hash(cfg),
            "experiment": experiment_of(cfg), "profile": cfg.get("profile_name") or "default",
            "variant": cfg.get("variant") or "", "seed": cfg.seed, "overrides": list(run_overrides),
            "metrics": final, "history": history, "segments": metrics.get("segments", []),
            "git": git_state(), "hardware": final.get("hardware"),
            "date": final.get("date"), "config": training_config(cfg), "artifacts": artifacts or {}}


def write_record(records_dir: str | Path, record: dict[str, Any], cfg: DictConfig) -> Path:
    from engine.checkpoint import write_json_atomic

    path = record_path(records_dir, cfg, record["config_hash"])
    write_json_atomic(record, path)
    return path
