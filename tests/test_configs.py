"""Every config composes, resolves to its recorded values, and instantiates (lightning-hydra-template style).

``tests/golden/configs.json`` holds the resolved values (everything but ``paths`` and ``hydra``) of every
model/data/experiment/profile option and of every experiment under every profile, as they were when the config groups were refactored into bases (commit 7a335f9); the config
hashes of the lead's run records are pinned separately below. A refactor must keep both; a deliberate
change of a value regenerates the file (``python -m tests.test_configs --update``) in the same commit.
"""
from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from engine.records import config_hash
from tests.helpers import ROOT

CONFIGS = ROOT / "configs"
GOLDEN = Path(__file__).with_name("golden") / "configs.json"

# config hashes on main at 7a335f9 (engine.records.config_hash of the composed, unresolved config)
HASHES = {
    "": "4cd2f9ccad1c",
    "experiment=even_kernels profile=quick": "ca2e92d3065d",
    "experiment=blurpool profile=quick": "d389c5d33c19",
    "experiment=rednet profile=quick": "5bd377ec43d9",
    "experiment=rednet_baseline profile=quick": "aaa6326ca56b",
    "experiment=octave profile=quick": "45cd5f164cf4",
    "profile=standard experiment=even_kernels": "c84349cd089a",
    # as sweep jobs on a CPU hash them (precision auto resolved to fp32)
    "experiment=even_kernels profile=quick trainer.precision=fp32": "fb4bdbcd0f4f",
    "experiment=blurpool profile=quick model.filt_size=4 data.augment=false seed=2 trainer.precision=fp32":
        "cb50357413f0",
    "experiment=octave profile=quick model.alpha=0.5 trainer.precision=fp32": "fbdc8a8e23d1",
    "experiment=rednet profile=quick model.kernel_size=5 trainer.precision=fp32": "f6d7e4b392e3",
    "experiment=precision trainer.precision=bf16": "6b373067031c",
}


def options(group: str) -> list[str]:
    """The selectable options of a config group (base files starting with ``_`` are not options)."""
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml") if not p.stem.startswith("_"))


def override_sets() -> list[str]:
    """Space-separated override strings: each option alone, and every experiment under every profile."""
    sets = [f"{g}={o}" for g in ("data", "model", "experiment", "profile") for o in options(g)]
    sets += [f"experiment={e} profile={p}" for e in options("experiment") for p in options("profile")]
    return sets


def compose_cfg(overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=overrides.split())


def compose_all(override_strings: list[str]) -> dict[str, DictConfig]:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return {s: compose("train", overrides=s.split()) for s in override_strings}


def resolved(cfg: DictConfig) -> dict:
    """The config as plain values, ``paths`` replaced by a fixed data dir (the rest of ``paths`` is runtime)."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    cfg.paths = {"data_dir": "DATA_DIR"}
    plain = OmegaConf.to_container(cfg, resolve=True)
    del plain["paths"]
    return plain


def snapshot() -> dict[str, dict]:
    return {s: resolved(cfg) for s, cfg in compose_all(["", *override_sets()]).items()}


@pytest.mark.parametrize("overrides", list(HASHES))
def test_run_record_hashes_are_unchanged(overrides):
    assert config_hash(compose_cfg(overrides)) == HASHES[overrides]


@pytest.mark.slow  # about 80 compositions
def test_every_config_resolves_to_its_recorded_values():
    golden = json.loads(GOLDEN.read_text())
    now = snapshot()
    assert sorted(now) == sorted(golden), "config options were added or removed: regenerate the golden file"
    changed = [s for s in now if now[s] != golden[s]]
    assert not changed, f"resolved values changed for {changed[:5]}: {_first_diff(golden[changed[0]], now[changed[0]])}"


def _first_diff(a: dict, b: dict, prefix: str = "") -> str:
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k, "<missing>"), b.get(k, "<missing>")
        if isinstance(x, dict) and isinstance(y, dict):
            if x != y:
                return _first_diff(x, y, f"{prefix}{k}.")
        elif x != y:
            return f"{prefix}{k}: {x!r} -> {y!r}"
    return ""


def _assert_callable_with(target: DictConfig, *args, **runtime) -> None:
    """A ``_partial_`` target resolves to a function that accepts its config keys plus ``runtime`` args."""
    fn = get_method(target._target_)
    kwargs = {k: v for k, v in OmegaConf.to_container(target, resolve=True).items() if not k.startswith("_")}
    inspect.signature(fn).bind(*args, **kwargs, **runtime)


@pytest.mark.parametrize("overrides", [f"{g}={o}" for g in ("experiment", "profile", "data", "optim", "sched", "logger")
                                       for o in options(g)])
def test_every_config_instantiates(overrides):
    cfg = compose_cfg(overrides)
    if cfg.logger.get("_target_"):  # engine.job builds it with the run dir, the resolved config and a run id
        _assert_callable_with(cfg.logger, save_dir="out", run_config={}, run_id=None)
    if cfg.task == "probe":
        _assert_callable_with(cfg.probe, out_dir="out", logger=None)
        return
    model = instantiate(cfg.model)
    optim = instantiate(cfg.optim)(model.parameters())
    assert isinstance(optim, torch.optim.Optimizer)
    _assert_callable_with(cfg.sched, optim, total_steps=1, steps_per_epoch=1)
    _assert_callable_with(cfg.data.source)
    ctx = dict.fromkeys(("model", "prep", "precision", "test_x", "test_y", "val_x", "val_y", "out_dir", "logger",
                         "seed"))  # what engine.loop hands every evaluator
    for evaluator in cfg.evaluators.values():
        _assert_callable_with(evaluator, **ctx)
    size = cfg.data.image_size
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, cfg.data.channels, size, size))
    assert out.shape == (1, cfg.data.num_classes)


@pytest.mark.parametrize("model", options("model"))
def test_every_model_config_builds_and_runs(model):
    """Each option names a registered model after its file; create_model rejects unknown keys (TypeError)."""
    from models import list_models

    cfg = compose_cfg(f"model={model} data=synthetic")
    assert cfg.model.name == model and model in list_models()
    with torch.no_grad():
        out = instantiate(cfg.model).eval()(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, cfg.data.num_classes)


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(snapshot(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
