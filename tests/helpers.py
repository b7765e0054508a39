"""Shared test helpers: run train.py through the CLI in a temp dir."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*overrides: str, run_dir: Path | None = None, multirun: bool = False, timeout: int = 300,
            env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``python train.py overrides...`` from the repo root; raises with its output if it fails."""
    args = [sys.executable, str(ROOT / "train.py"), *overrides]
    if multirun:
        args.insert(2, "-m")
    elif run_dir is not None:
        args.append(f"hydra.run.dir={run_dir}")
    full_env = {**os.environ, "WANDB_SILENT": "true", "OMP_NUM_THREADS": "2", **(env or {})}
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())
