"""One-time migration: run records for the quick-profile runs made before records existed.

Those runs (2026-11-25, commits up to d883c42) left only ``results/<claim>/runs.csv``: final metrics and
the overrides that rerun each run, no per-epoch history and no exact commit. This script turns each row
into a record (``engine.records``) whose config is composed from the row's overrides with this checkout's
configs, plus ``trainer.precision=bf16`` (the default then), and marks it ``backfilled``.

    python scripts/backfill_records.py results/even_kernels/runs.csv ... [--records results/records]
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hydra import compose, initialize_config_dir  # noqa: E402

from engine.records import SCHEMA, config_hash, training_config, write_record  # noqa: E402
from experiments.probe_utils import number  # noqa: E402

NOT_METRICS = {"run_dir", "overrides", "variant", "seed"}
SOURCE = "results/{claim}/runs.csv of commit d883c42 (runs of 2026-11-25; no per-epoch history, commit unknown)"


def backfill(csv_path: Path, records_dir: Path) -> int:
    rows = list(csv.DictReader(open(csv_path)))
    for row in rows:
        overrides = [o for o in row["overrides"].split() if not o.startswith("trainer.skip_finished")]
        overrides.append("trainer.precision=bf16")
        cfg = compose("train", overrides=overrides)
        metrics = {k: number(v) for k, v in row.items() if k not in NOT_METRICS and v != ""}
        record = {"schema": SCHEMA, "status": "ok", "config_hash": config_hash(cfg),
                  "experiment": cfg.experiment_name, "profile": cfg.profile_name, "variant": row["variant"],
                  "seed": int(row["seed"]), "overrides": overrides, "metrics": metrics, "history": [],
                  "git": {"commit": None, "dirty": None}, "hardware": metrics.get("hardware"),
                  "date": metrics.get("date"), "config": training_config(cfg),
                  "backfilled": SOURCE.format(claim=csv_path.parent.name)}
        write_record(records_dir, record, cfg)
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+", type=Path)
    ap.add_argument("--records", type=Path, default=ROOT / "results" / "records")
    args = ap.parse_args()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        for path in args.csv:
            print(f"{path}: {backfill(path, args.records)} records")


if __name__ == "__main__":
    main()
