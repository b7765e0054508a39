"""The grids of trained claims (configs/grid/<name>.yaml): their jobs, and how far the records have filled them.

A grid is a list of sweeps in Hydra's comma syntax; each sweep's product gives single ``python train.py`` jobs
(``scripts/run_grid.py`` runs them). A *cell* is one configuration without its seed; its planned seeds are
those of every sweep that names it. A job counts as recorded when a record of the grid's profile carries all of
the job's overrides: the overrides that ``run_grid`` passes, so a record made by the grid always matches its job.
(``run_grid`` itself decides by config hash, which needs the composed config; this matching needs none, so the
report stays fast and offline.)
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

GRIDS = Path(__file__).resolve().parents[1] / "configs" / "grid"


def expand(overrides: list[str]) -> list[list[str]]:
    """The single-job override lists of one sweep (comma lists -> their product, as Hydra's basic sweeper)."""
    choices = [[f"{o.split('=', 1)[0]}={v}" for v in o.split("=", 1)[1].split(",")] for o in overrides]
    return [list(c) for c in itertools.product(*choices)]


def _seed(job: list[str]) -> tuple[tuple[str, ...], str | None]:
    """(the job's overrides without its seed, the seed or None)."""
    seeds = [o.split("=", 1)[1] for o in job if o.startswith("seed=")]
    return tuple(o for o in job if not o.startswith("seed=")), (seeds[0] if seeds else None)


def parse_only(items: Sequence[str]) -> dict[str, set[str]]:
    """``["model.name=resnet56", "seed=0,1"]`` -> ``{"model.name": {"resnet56"}, "seed": {"0", "1"}}``; a malformed
    item raises ``ValueError`` naming it."""
    only: dict[str, set[str]] = {}
    for item in items:
        key, _, values = item.partition("=")
        if not key or not values or any(not v for v in values.split(",")):
            raise ValueError(f"--only {item!r}: expected KEY=VALUE[,VALUE...], e.g. model.name=resnet56")
        only.setdefault(key, set()).update(values.split(","))
    return only


def selected(job: Sequence[str], only: dict[str, set[str]]) -> bool:
    """Whether a single job's overrides set every key of ``only`` to one of its values."""
    have = dict(o.split("=", 1) for o in job)
    return all(have.get(key) in values for key, values in only.items())


def sweeps(grid_file: str | Path) -> list[tuple[list[str], list[list[str]]]]:
    """The grid's sweeps in grid order, each as (its overrides, its single jobs' overrides)."""
    return [(list(sweep), expand(list(sweep))) for sweep in OmegaConf.load(grid_file).sweeps]


def grid_jobs(grid_file: str | Path) -> Iterator[tuple[tuple[str, ...], str | None, list[str]]]:
    """The grid's single jobs in grid order, each as (its cell, its seed or None, its overrides)."""
    for _, jobs in sweeps(grid_file):
        for job in jobs:
            yield (*_seed(job), job)


def cells(grid_file: str | Path) -> list[tuple[str, ...]]:
    """The grid's cells in grid order: each one configuration's overrides without its seed."""
    return list(dict.fromkeys(cell for cell, _, _ in grid_jobs(grid_file)))


def job_config(job: Sequence[str], profile: str, extra: Sequence[str] = ()) -> DictConfig:
    """The resolved config of one grid job (``python train.py <job> profile=<profile> <extra>``), as its run
    would compose it: its hash decides whether it is recorded. Call inside ``hydra.initialize_config_dir``."""
    from hydra import compose

    from engine.job import resolve_auto

    cfg = compose("train", overrides=[*job, f"profile={profile}", *extra])
    resolve_auto(cfg)  # hash what auto means on this machine, as a run would
    return cfg


def cell_models(grid_file: str | Path) -> list[tuple[str, DictConfig]]:
    """The distinct nets of a grid in grid order: (the first cell that trains it, its composed ``model`` config,
    instantiable with ``hydra.utils.instantiate``). Cells that differ only outside the model (data augmentation,
    say) share one net."""
    from hydra import initialize_config_dir

    profile, nets = OmegaConf.load(grid_file).profile, {}
    with initialize_config_dir(config_dir=str(GRIDS.parent), version_base="1.3"):
        for cell in cells(grid_file):
            model = job_config(cell, profile).model
            nets.setdefault(json.dumps(OmegaConf.to_container(model, resolve=True), sort_keys=True),
                            (" ".join(cell), model))
    return list(nets.values())


def progress(grid_file: str | Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell of the grid, in grid order: its overrides, the planned seeds, the seeds with an ok record and
    those with only failed records. ``records``: rows of ``experiments.runs.collect`` (ok and failed), each with
    its ``profile``, ``status`` and ``overrides`` (one space-separated string)."""
    profile = OmegaConf.load(grid_file).profile
    mine = [(set(r["overrides"].split()), r["status"]) for r in records if r["profile"] == profile]
    cells: dict[tuple[str, ...], dict[str, Any]] = {}
    for cell, seed, job in grid_jobs(grid_file):
        row = cells.setdefault(cell, {"cell": " ".join(cell), "planned": [], "ok": [], "failed": []})
        row["planned"].append(seed)
        states = {status for overrides, status in mine if set(job) <= overrides}
        if "ok" in states:
            row["ok"].append(seed)
        elif states:
            row["failed"].append(seed)
    return list(cells.values())


def progress_md(grid_name: str, records: list[dict[str, Any]]) -> str:
    """A RESULTS.md section: which cells of ``configs/grid/<grid_name>.yaml`` have their seeds recorded."""
    rows = progress(GRIDS / f"{grid_name}.yaml", records)
    jobs = sum(len(r["planned"]) for r in rows)
    done = sum(len(r["ok"]) for r in rows)
    seeds = lambda s: ", ".join(str(x) for x in s) or "-"  # noqa: E731
    lines = [f"## The {grid_name} grid: what is recorded", "",
             f"`configs/grid/{grid_name}.yaml` plans {jobs} runs in {len(rows)} cells; {done} have an ok record. "
             "A claim's verdicts use the seeds recorded so far (n in its tables). "
             f"`python scripts/run_grid.py {grid_name}` continues the grid on any machine, skipping what is recorded; "
             "`--dry-run` lists what is left with a time estimate.", "",
             "| cell | n recorded / planned | seeds recorded | seeds failed | seeds left |", "|---|---|---|---|---|"]
    for r in rows:
        left = [s for s in r["planned"] if s not in r["ok"]]
        lines.append(f"| {r['cell']} | {len(r['ok'])}/{len(r['planned'])} | {seeds(r['ok'])} | "
                     f"{seeds(r['failed'])} | {seeds(left)} |")
    return "\n".join(lines) + "\n"
