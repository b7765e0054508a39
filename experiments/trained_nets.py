"""The trained nets a probe reads (``trained_drift``, ``trained_erosion``): which checkpoints count as runs.

A probe's sample is one net per seed and kind, all trained with one recipe, each to its last epoch:

- only finished runs count: a checkpoint of a run still training (or stopped mid-way) is skipped;
- one net per training config: the same config found twice (a grid's run dir and a probe-nets copy of it,
  a symlink) counts once (``engine.records.config_hash``);
- one model, one profile and one recipe: runs whose training configs differ in anything but the probe's
  axes (``seed``, ``model.conv``) are refused in one line naming the keys, never pooled.
"""
from __future__ import annotations

import logging
import os
from glob import glob, has_magic

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from engine import records
from engine.checkpoint import load_checkpoint
from engine.inference import Batches
from engine.validate import ConfigError

log = logging.getLogger(__name__)
AXES = ("seed", "model.conv")  # what a probe compares across runs; everything else must agree


class NoRuns(ConfigError):
    """No finished run of the probe's selection among the checkpoints (committed probe records may still hold some)."""


def find_checkpoints(checkpoints: str) -> list[str]:
    """``last.pt`` paths from a glob, or every ``**/checkpoints/last.pt`` under a directory (a sweep dir,
    ``multirun/``, ``outputs/``: wherever Hydra put the runs)."""
    if has_magic(checkpoints):
        return sorted(glob(checkpoints, recursive=True))
    if os.path.isdir(checkpoints):
        return sorted(glob(os.path.join(checkpoints, "**", "checkpoints", "last.pt"), recursive=True))
    return [checkpoints] if os.path.isfile(checkpoints) else []


def finished(state: dict) -> bool:
    """Whether a checkpoint holds a run trained to its last epoch (not one still running or preempted)."""
    return state.get("partial_epoch") is None and int(state["epoch"]) >= int(state["config"]["trainer"]["epochs"])


def recipe_of(config: dict) -> dict:
    """A training config (a checkpoint's resolved config or a run record's ``config``) without the ``AXES``, recomputed
    by this code, so runs of older code compare."""
    return records.training_config(OmegaConf.create(config), drop=AXES)


def recipe_hash(config: dict) -> str:
    """12 hex digits naming ``recipe_of(config)``: runs with equal recipe hashes differ only in the ``AXES``."""
    return records.digest(recipe_of(config))


def select_runs(checkpoints: str, experiment: str | None, model: str | None,
                profile: str | None = None) -> tuple[list[tuple[str, dict]], list[str]]:
    """``(path, checkpoint state)`` of every run to probe, and the model name of those runs (one: a mix is refused).

    Keeps the finished runs of ``experiment`` (``experiment_name``), ``model`` (``model.name``) and ``profile``
    (``profile_name``), each None = any, one per training config; raises a one-line ``ConfigError`` when
    nothing is left or the runs mix models, profiles or recipes."""
    paths = find_checkpoints(checkpoints)
    runs, found, unfinished, hashes = [], set(), [], {}
    for path in paths:
        state = load_checkpoint(path)
        cfg = state["config"]
        if experiment is not None and cfg.get("experiment_name") != experiment:
            continue
        if profile is not None and cfg.get("profile_name") != profile:
            continue
        if not finished(state):
            unfinished.append(path)
            continue
        found.add(cfg["model"]["name"])
        if model is not None and cfg["model"]["name"] != model:
            continue
        key = records.config_hash(OmegaConf.create(cfg))
        if key in hashes:
            log.info("%s: same training config as %s, counted once", path, hashes[key])
            continue
        hashes[key] = path
        runs.append((path, state))
    if unfinished:
        log.info("skipped %d unfinished run(s) (still training or stopped mid-way): %s", len(unfinished),
                 ", ".join(unfinished))
    if not found:
        of = f" of an {experiment!r} run" if experiment else ""
        of += f" of profile {profile!r}" if profile else ""
        late = f", {len(unfinished)} of them unfinished" if unfinished else ""
        raise NoRuns(f"probe.checkpoints={checkpoints!r} holds no finished checkpoints/last.pt{of} ({len(paths)} "
                     f"checkpoint(s) found{late}); pass a sweep dir or glob, or train the nets first: "
                     "python scripts/run_grid.py probe_nets")
    if not runs:
        late = f"; {len(unfinished)} unfinished run(s) not counted" if unfinished else ""
        raise NoRuns(f"probe.model={model!r}: none of the finished runs among the {len(paths)} checkpoints "
                     f"matching {checkpoints!r} is one (they are {', '.join(sorted(found))}){late}")
    for key, what in (("model", lambda c: c["model"]["name"]), ("profile", lambda c: c.get("profile_name"))):
        kinds = sorted({str(what(state["config"])) for _, state in runs})
        if len(kinds) > 1:  # one net and one recipe per summary: never pool depths or profiles
            raise ConfigError(f"probe.checkpoints={checkpoints!r} holds runs of {len(kinds)} {key}s "
                              f"({', '.join(kinds)}); pick one with probe.{key}=...")
    check_one_recipe(checkpoints, runs)
    return runs, sorted({state["config"]["model"]["name"] for _, state in runs})


def check_one_recipe(checkpoints: str, runs: list[tuple[str, dict]]) -> None:
    """Refuse runs whose training configs differ in anything but the ``AXES`` (one line naming the keys)."""
    (first, state0), *rest = runs
    base = recipe_of(state0["config"])
    for path, state in rest:
        keys = records.config_diff(base, recipe_of(state["config"]))
        if keys:
            raise ConfigError(f"probe.checkpoints={checkpoints!r} mixes recipes: {path} differs from {first} in "
                              f"{', '.join(keys)} (a probe compares only {' and '.join(AXES)}); pass a sweep dir "
                              "or glob that holds one recipe")


def test_images(state: dict, images: int, cache: dict) -> torch.Tensor:
    """The first ``images`` test images of the run's own dataset, normalised as in training (each dataset
    loaded once per ``cache``)."""
    source = repr(state["config"]["data"]["source"])
    if source not in cache:
        cache[source] = instantiate(state["config"]["data"]["source"]).test_x[:images]
    return Batches(state["mean"], state["std"], torch.device("cpu"), False)(cache[source])

