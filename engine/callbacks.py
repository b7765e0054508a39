"""Hydra callbacks (registered in ``configs/hydra/default.yaml``).

``SweepSummary``: after a sweep (``-m``), one line per job (ok / failed + error) from every job's
``metrics.json`` (or ``refused.json``: the job's run dir held another config's results), written to ``<sweep dir>/multirun_summary.json``; the process exits with code 1 if
any job failed. Works with any launcher, since it only reads the job dirs.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """Record a job whose exception escaped ``main`` (train.py catches them in a sweep; not in a run)."""
        if job_return.status != JobStatus.FAILED:
            return
        path = Path(config.hydra.runtime.output_dir) / "metrics.json"
        if _read_json(path).get("status") != "failed":
            from engine.checkpoint import write_json_atomic

            e = job_return._return_value  # the exception (`.return_value` would re-raise it)
            write_json_atomic({"status": "failed", "error": f"{type(e).__name__}: {e}"}, path)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = collect_jobs(sweep_dir)
        failed = [j for j in jobs if j["status"] != "ok"]
        summary = {"sweep_dir": str(sweep_dir), "jobs": len(jobs), "failed": len(failed), "results": jobs}
        (sweep_dir / "multirun_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(format_table(jobs), flush=True)
        if failed:
            print(f"sweep: {len(failed)} of {len(jobs)} jobs failed (see {sweep_dir}/multirun_summary.json "
                  f"and each job's train.log)", file=sys.stderr, flush=True)
            sys.exit(1)


def collect_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job dir under ``sweep_dir`` (it holds ``.hydra/`` or ``metrics.json``) with its outcome."""
    dirs = {p.parent for p in sweep_dir.rglob(".hydra")} | {p.parent for p in sweep_dir.rglob("metrics.json")}
    return [_job_row(sweep_dir, d) for d in sorted(dirs - {sweep_dir}, key=_natural)]


def _job_row(sweep_dir: Path, job_dir: Path) -> dict[str, Any]:
    from engine.rundir import REFUSED

    metrics = _read_json(job_dir / REFUSED) or _read_json(job_dir / "metrics.json")  # refused: dir not its own
    status = metrics.get("status") or "failed"
    error = metrics.get("error") or ("" if metrics else "no metrics.json: the job crashed or was killed")
    if status not in ("ok", "failed"):
        status, error = "failed", f"status {status!r}: {error or 'the job did not finish'}"
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    overrides = list(OmegaConf.load(overrides_file)) if overrides_file.exists() else []
    return {"job": str(job_dir.relative_to(sweep_dir)), "status": status, "error": error,
            "overrides": " ".join(map(str, overrides))}


def format_table(jobs: list[dict[str, Any]]) -> str:
    width = max([len(j["job"]) for j in jobs] + [3])
    lines = [f"{'job':<{width}}  status  overrides / error"]
    for j in jobs:
        lines.append(f"{j['job']:<{width}}  {j['status']:<6}  {j['overrides']}")
        if j["error"]:
            lines.append(f"{'':<{width}}          -> {j['error']}")
    return "\n".join(lines)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _natural(path: Path) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in path.parts), str(path)
