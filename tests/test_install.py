"""The repo is pip-installable: ``pip install -e .`` makes models, engine and experiments importable anywhere."""
from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from tests.helpers import ROOT


def test_pyproject_packages_every_top_level_package():
    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert {name.rstrip("*") for name in found["include"]} == packages


@pytest.mark.slow  # builds an editable install into a fresh venv (offline: no index, no build isolation)
def test_editable_install_imports_from_anywhere(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    code = "import models, engine.records, experiments.stats, torch; print(models.__file__); " \
           "print(isinstance(models.create_model('resnet20'), torch.nn.Module))"
    before = subprocess.run([str(python), "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert before.returncode != 0 and "No module named 'models'" in before.stderr  # not importable by accident
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-build-isolation", "--no-index", "-e", str(ROOT)], check=True, capture_output=True)
    after = subprocess.run([str(python), "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    path, model = after.stdout.split()
    assert path == str(ROOT / "models" / "__init__.py") and model == "True"
