"""Probe records: a trained probe's sample accumulates over machines, as the run records do.

Two "machines" each hold the checkpoints of some runs of one grid; each probes its own and leaves probe records in
the shared records dir. The sample the second one reports must equal the sample of all checkpoints measured in one
place, and a checkout with no checkpoint at all regenerates it from the records alone.
"""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from engine.checkpoint import save_atomic
from engine.logger import NullLogger
from engine.records import find_record
from engine.validate import ConfigError
from experiments import trained_drift, trained_erosion
from experiments.runs import read_records
from experiments.trained_nets import NoRuns
from tests.helpers import even_state

RUNS = [("c2", 0), ("c2", 1), ("c2sp", 0), ("c2sp", 1), ("c3", 0), ("c3", 1)]


def _checkpoints(root, runs, **changes):
    for conv, seed in runs:
        state = even_state(conv, seed)
        state["config"]["optim"].update(changes)
        save_atomic(state, root / f"{conv}-{seed}" / "checkpoints" / "last.pt")
    return str(root)


@pytest.mark.parametrize("probe", [trained_erosion, trained_drift], ids=["trained_erosion", "trained_drift"])
def test_a_sample_split_over_machines_equals_the_sample_measured_in_one_place(tmp_path, probe):
    everything = _checkpoints(tmp_path / "all", RUNS)
    whole = probe.run(str(tmp_path / "whole"), NullLogger(), checkpoints=everything, images=16, profile="standard")
    records = tmp_path / "records"
    a = _checkpoints(tmp_path / "machine_a", RUNS[:3])
    b = _checkpoints(tmp_path / "machine_b", RUNS[3:])
    first = probe.run(str(tmp_path / "a"), NullLogger(), checkpoints=a, images=16, profile="standard",
                      records=str(records))
    assert first["n_runs"] == 3 and first["n_from_records"] == 0
    second = probe.run(str(tmp_path / "b"), NullLogger(), checkpoints=b, images=16, profile="standard",
                       records=str(records))
    assert second["n_runs"] == 6 and second["n_from_records"] == 3
    clone = probe.run(str(tmp_path / "clone"), NullLogger(), checkpoints=str(tmp_path / "no_checkpoints"), images=16,
                      profile="standard", records=str(records))
    assert clone["n_from_records"] == 6
    strip = lambda m: {k: v for k, v in m.items() if k != "n_from_records"}  # noqa: E731
    assert strip(second) == strip(whole) == strip(clone)
    name = probe.__name__.rsplit(".", 1)[1]
    assert (tmp_path / "clone" / f"{name}.png").exists()
    files = sorted(records.rglob(f"*.{name}.json"))
    assert [f.parent.relative_to(records).as_posix() for f in files] == ["standard/even_kernels"] * 6
    rec = json.loads(files[0].read_text())
    assert files[0].name == f"resnet20-seed{rec['seed']}-{rec['config_hash']}.{name}.json"  # beside its run record
    assert rec["settings"] == {"images": 16} and rec["git"]["commit"] and rec["hardware"]
    datetime.strptime(rec["date"], "%Y-%m-%d %H:%M:%S")  # UTC, dated as the run records are (provenance.now)
    assert read_records([records]) == [] and find_record(records, rec["config_hash"]) is None  # not run records


def test_a_sample_never_pools_recipes_or_probe_settings(tmp_path):
    records = tmp_path / "records"
    trained_erosion.run(str(tmp_path / "a"), NullLogger(), checkpoints=_checkpoints(tmp_path / "a", RUNS[:2]),
                        images=16, profile="standard", records=str(records))
    with pytest.raises(ConfigError, match=r"measured with \{'images': 16\}, not \{'images': 8\}"):
        trained_erosion.run(str(tmp_path / "b"), NullLogger(), checkpoints=str(tmp_path / "none"), images=8,
                            profile="standard", records=str(records))
    tuned = _checkpoints(tmp_path / "tuned", RUNS[2:4], lr=0.4)
    with pytest.raises(ConfigError, match=r"recipe_hash .* would share one sample; a probe compares only seed"):
        trained_erosion.run(str(tmp_path / "c"), NullLogger(), checkpoints=tuned, images=16, profile="standard",
                            records=str(records))
    with pytest.raises(NoRuns, match="holds no finished checkpoints"):  # nothing here, nothing committed
        trained_erosion.run(str(tmp_path / "d"), NullLogger(), checkpoints=str(tmp_path / "none"), images=16,
                            profile="quick", records=str(records))
