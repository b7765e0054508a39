"""Run a grid of trained claims (configs/grid/<name>.yaml), one Hydra multirun per entry, in order.

    python scripts/run_grid.py standard            # continue the full-data grid (skips recorded configs)
    python scripts/run_grid.py quick --dry-run     # what would run, what is recorded, the time estimate

Before each sweep it prints how many of its jobs already have a run record (those are skipped) and an
estimate of the time left, from the wall times of the records of the same experiment and profile. Jobs
run two at a time with one thread each (hydra/launcher=parallel), in a fixed dir per sweep
(multirun/grid-<name>/<index>-<hash>) so a killed job resumes from its checkpoint. A failed sweep is
reported and the grid goes on; the exit code is 1 if any sweep failed.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from engine.job import resolve_auto_precision  # noqa: E402
from engine.records import config_hash, find_record  # noqa: E402
from experiments.runs import read_records  # noqa: E402

PARALLEL = ["hydra/launcher=parallel", "trainer.threads=1"]


def expand(overrides: list[str]) -> list[list[str]]:
    """The single-job override lists of one sweep (comma lists -> their product, as Hydra's basic sweeper)."""
    choices = [[f"{o.split('=', 1)[0]}={v}" for v in o.split("=", 1)[1].split(",")] for o in overrides]
    return [list(c) for c in itertools.product(*choices)]


def job_status(jobs: list[list[str]], profile: str, records_dir: Path) -> list[bool]:
    """Whether each job's config already has an ok record."""
    out = []
    for job in jobs:
        cfg = compose("train", overrides=[*job, f"profile={profile}"])
        resolve_auto_precision(cfg)  # hash what auto means on this machine, as a run would
        out.append(find_record(records_dir, config_hash(cfg)) is not None)
    return out


def minutes_per_job(experiment: str, profile: str, records_dir: Path) -> float | None:
    walls = [r["metrics"].get("wall_time_s") for r in read_records([records_dir / profile])
             if r["experiment"] == experiment and r["status"] == "ok"]
    walls = [w for w in walls if isinstance(w, (int, float))]
    return sum(walls) / len(walls) / 60 if walls else None


def run_sweep(name: str, index: int, overrides: list[str], profile: str) -> int:
    tag = hashlib.sha256(" ".join(overrides).encode()).hexdigest()[:8]
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *overrides, f"profile={profile}", *PARALLEL,
           f"hydra.sweep.dir=multirun/grid-{name}/{index:02d}-{tag}"]
    print("  $", " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grid", help="a file name under configs/grid (standard, quick)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and the estimate, run nothing")
    ap.add_argument("--records", type=Path, default=ROOT / "results" / "records")
    args = ap.parse_args()
    path = ROOT / "configs" / "grid" / f"{args.grid}.yaml"
    if not path.exists():
        sys.exit(f"run_grid: no grid {path.relative_to(ROOT)}; have: "
                 f"{', '.join(p.stem for p in sorted(path.parent.glob('*.yaml')))}")
    grid = OmegaConf.load(path)
    failed = []
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        plan = [(list(s), job_status(expand(list(s)), grid.profile, args.records)) for s in grid.sweeps]
    left = [sum(not d for d in done) for _, done in plan]
    print(f"grid {args.grid}: {len(plan)} sweeps, {sum(len(d) for _, d in plan)} jobs, {sum(left)} not yet recorded")
    for i, ((overrides, done), todo) in enumerate(zip(plan, left), 1):
        exp = overrides[0].split("=", 1)[1]
        per_job = minutes_per_job(exp.replace("_baseline", ""), grid.profile, args.records)
        eta = f", about {todo * per_job / 2 / 60:.1f} h at 2 jobs at a time" if per_job and todo else ""
        print(f"[{i}/{len(plan)}] {' '.join(overrides)}: {len(done) - todo}/{len(done)} recorded{eta}", flush=True)
        if todo and not args.dry_run and run_sweep(args.grid, i, overrides, grid.profile) != 0:
            failed.append(i)
            print(f"[{i}/{len(plan)}] FAILED (see multirun/grid-{args.grid}/; failed runs are recorded)", flush=True)
    if failed:
        sys.exit(f"run_grid: sweeps {failed} of grid {args.grid} failed")


if __name__ == "__main__":
    main()
