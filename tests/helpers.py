"""Shared test helpers: run train.py through the CLI in a temp dir; checkpoint states like train.py writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """``scripts/<name>.py`` as a module (scripts/ is not a package), for tests of its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def even_state(conv: str, seed: int, profile: str = "standard") -> dict:
    """A checkpoint state like train.py writes, of a random-init narrow ResNet-20 on 16x16 synthetic data."""
    from models import create_model

    torch.manual_seed(seed)
    model = create_model("resnet20", num_classes=10, in_channels=3, conv=conv, width=0.25)
    source = {"_target_": "engine.data.synthetic", "image_size": 16, "channels": 3, "num_classes": 10,
              "train_size": 64, "test_size": 32, "seed": 0}
    cfg = {"experiment_name": "even_kernels", "profile_name": profile, "seed": seed,
           "model": {"_target_": "models.create_model", "name": "resnet20", "num_classes": 10, "in_channels": 3,
                     "conv": conv, "width": 0.25},
           "data": {"channels": 3, "image_size": 16, "source": source}, "trainer": {"epochs": 2}, "optim": {"lr": 0.1}}
    return {"model": model.state_dict(), "config": cfg, "mean": torch.full((3,), 0.5), "std": torch.full((3,), 0.25),
            "epoch": 2, "partial_epoch": None}
