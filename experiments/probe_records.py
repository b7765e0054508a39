"""Probe records: what a trained-net probe measured of each run, committed beside the run's record.

A trained probe (``trained_drift``, ``trained_erosion``) reads each run's final net from its checkpoint, and
checkpoints are never committed: a grid's runs finish on different machines (a GPU lease, CPU sessions), each
holding only its own. So the probe writes what it measured of every run it has a checkpoint of to
``<records_dir>/<profile>/<experiment>/<variant>-seed<seed>-<config hash>.<probe>.json``, beside the run's record
(``engine.records``) and keyed by the same config hash, and its sample is the runs it has a checkpoint of plus the
committed probe records of the others. A probe's sample thus accumulates over machines as the run records do.

A probe record holds the rows the probe wrote for the run, the probe's settings (``images``; records measured with
other settings are refused, never pooled), the run's recipe hash (``experiments.trained_nets.recipe_hash``: one
recipe per sample), and the probe's own provenance (commit and dirty flag, hardware, date).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf

from engine import records
from engine.checkpoint import write_json_atomic
from engine.provenance import hardware, now
from engine.validate import ConfigError
from experiments.trained_nets import NoRuns, recipe_hash, select_runs

log = logging.getLogger(__name__)
SCHEMA = 1
Measure = Callable[[dict], list[dict]]  # checkpoint state -> the probe's rows for that run (without "run")


def path_of(records_dir: str | Path, probe: str, config: dict, digest: str) -> Path:
    """The probe record of the run with this (resolved) config and config hash, beside its run record."""
    return beside(records.record_path(records_dir, OmegaConf.create(config), digest), probe)


def beside(run_record: str | Path, probe: str) -> Path:
    """A run record's path with ``.<probe>`` before ``.json``: where that run's probe record lives."""
    run_record = Path(run_record)
    return run_record.with_name(f"{run_record.stem}.{probe}.json")


def make(probe: str, config: dict, digest: str, rows: list[dict], settings: dict, **provenance: Any) -> dict[str, Any]:
    """The probe record of one run (``provenance`` overrides this process's commit, hardware and date)."""
    return {"schema": SCHEMA, "probe": probe, "config_hash": digest, "recipe_hash": recipe_hash(config),
            "experiment": records.experiment_of(OmegaConf.create(config)),
            "profile": config.get("profile_name") or "default", "model": config["model"]["name"],
            "conv": config["model"].get("conv", "?"), "seed": config["seed"], "settings": dict(settings),
            "rows": [{k: v for k, v in r.items() if k != "run"} for r in rows],
            "git": records.git_state(), "hardware": hardware(None), "date": now(), **provenance}


def read(records_dir: str | Path, probe: str, experiment: str | None, model: str | None,
         profile: str | None) -> list[dict[str, Any]]:
    """The committed probe records of ``probe`` under ``records_dir`` of runs of that experiment, model and profile
    (None: any), each with its ``path``."""
    out = []
    for path in sorted(Path(records_dir).rglob(f"*.{probe}.json")):
        rec = json.loads(path.read_text())
        if rec.get("probe") != probe:
            continue
        if all(want is None or rec.get(key) == want
               for key, want in (("experiment", experiment), ("model", model), ("profile", profile))):
            out.append({**rec, "path": str(path)})
    return out


def sample(probe: str, measure: Measure, checkpoints: str, experiment: str | None, model: str | None,
           profile: str | None, settings: dict, records_dir: str | Path | None) -> list[dict[str, Any]]:
    """Every run of the probe's sample, one probe record per run (config hash order), its ``rows`` each with
    ``run`` = the config hash, ``source`` (the checkpoint it was measured from here, or the probe record read) and
    ``from_record``.

    The runs with a finished checkpoint (``experiments.trained_nets.select_runs``) are measured here and, with
    ``records_dir`` set, written as probe records; the committed probe records of the other runs join them. Raises
    a one-line ``ConfigError`` when there is no run at all, or the sample would mix models, profiles, recipes or
    probe settings."""
    committed = read(records_dir, probe, experiment, model, profile) if records_dir is not None else []
    try:
        local, _ = select_runs(checkpoints, experiment, model, profile)
    except NoRuns:
        if not committed:
            raise
        local = []
    runs = {}
    for path, state in local:
        cfg = state["config"]
        digest = records.config_hash(OmegaConf.create(cfg))
        rec = make(probe, cfg, digest, measure(state), settings)
        if records_dir is not None:
            write_json_atomic(rec, path_of(records_dir, probe, cfg, digest))
        runs[digest] = {**rec, "source": path, "from_record": False}
    for rec in committed:
        if rec["config_hash"] not in runs:
            runs[rec["config_hash"]] = {**rec, "source": rec["path"], "from_record": True}
    if committed:
        log.info("%s: %d run(s) measured here, %d read from committed probe records under %s", probe, len(local),
                 len(runs) - len(local), records_dir)
    check_one_sample(probe, list(runs.values()), settings)
    return [{**r, "rows": [{"run": h, **row} for row in r["rows"]]} for h, r in sorted(runs.items())]


def check_one_sample(probe: str, runs: list[dict], settings: dict) -> None:
    """Refuse a sample that mixes models, profiles, recipes or probe settings, in one line naming two sources."""
    first = runs[0]
    for key, fix in (("model", "pick one with probe.model=..."), ("profile", "pick one with probe.profile=..."),
                     ("recipe_hash", "a probe compares only seed and model.conv"),
                     ("settings", "rerun with the same probe settings, or probe.records=null to measure only the "
                                  "checkpoints here")):
        other = next((r for r in runs if r[key] != first[key]), None)
        if other is not None:
            raise ConfigError(f"{probe}: {other['source']} ({key} {other[key]}) and {first['source']} ({key} "
                              f"{first[key]}) would share one sample; {fix}")
    if runs and first["settings"] != settings:
        raise ConfigError(f"{probe}: the committed probe records (e.g. {first['source']}) were measured with "
                          f"{first['settings']}, not {settings}; rerun with those settings, or probe.records=null")


def describe(runs: list[dict]) -> dict[str, Any]:
    """The sample's size and provenance for a probe's metrics: its runs, how many of them were read from committed
    probe records (measured on another machine or earlier), and the profile(s) of its runs."""
    return {"n_runs": len(runs), "n_from_records": sum(r["from_record"] for r in runs),
            "profile": ", ".join(sorted({str(r["profile"]) for r in runs}))}
