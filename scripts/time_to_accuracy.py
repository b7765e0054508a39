"""Time-to-accuracy of a recorded run: epochs, wall time and img/s until the validation accuracy first
reaches a target, from the run record's per-epoch history (engine/records.py).

    python train.py experiment=even_kernels profile=standard model.conv=c3 seed=0   # writes the record
    python scripts/time_to_accuracy.py results/records/standard/even_kernels/resnet20-c3-seed0-*.json \
        [--target 88.0]

    python scripts/time_to_accuracy.py results/records/standard/even_kernels/resnet20-c3-seed*.json --ceiling

``--ceiling`` sets the target to the ceiling's validation accuracy minus 1.5 pp: the ceiling is the
recorded ResNet-20 C3 run of experiment ``ceiling`` (profile paper) on the same dataset (``python scripts/run_grid.py ceiling``;
the longest schedule if several), found under ``--records-dir``. Without --target or --ceiling the target
is the run's own final validation accuracy minus 1.5 pp. Every number comes from the records, with
their hardware, commit and date.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import rules, runs  # noqa: E402


def report(record: dict, target: float | None) -> list[str]:
    hist, m = record["history"], record["metrics"]
    if not hist:
        raise SystemExit(f"time_to_accuracy: {record['path']} has no per-epoch history")
    target = hist[-1]["val_acc"] - 1.5 if target is None else target
    prov = runs.provenance(record)
    resumed = (f", resumed: {prov['segments']} segments" if prov["segments"] > 1 else "") + (
        f", {runs.UNSEGMENTED}" if prov["partial_provenance"] else "")
    lines = [f"record {record['path']}", f"  config {record['config_hash']}, commit {prov['git_commit']}, "
             f"{prov['hardware']}, {record['date']} UTC{resumed}",
             f"  rerun: python train.py {' '.join(record['overrides'])}", "",
             "epoch  val_acc  train_s(cum)  img/s"]
    cum = 0.0
    for row in hist:
        cum += row["epoch_time_s"]
        lines.append(f"{row['epoch']:5d}  {row['val_acc']:7.2f}  {cum:12.0f}  {row['throughput_img_s']:5.0f}")
    reached = rules.time_to(hist, target)
    lines += ["", f"final: test_acc {m['test_acc']:.2f} % (single view), val_acc {hist[-1]['val_acc']:.2f} %, "
              f"{len(hist)} epochs, train time {cum / 60:.1f} min, wall time {runs.run_wall_s(record) / 60:.1f} min, "
              f"{m['train_throughput_img_s']:.0f} img/s"]
    lines.append(f"target val_acc >= {target:.2f} %: " + (
        f"reached at epoch {reached[0]} after {reached[1] / 60:.1f} min of training" if reached else "not reached"))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="+", type=Path, metavar="record")
    ap.add_argument("--target", type=float, default=None, help="validation accuracy (%%) to reach")
    ap.add_argument("--ceiling", action="store_true",
                    help=f"target = the ceiling run's validation accuracy - {rules.CEILING_GAP} pp")
    ap.add_argument("--records-dir", type=Path, default=runs.ROOT / "results" / "records",
                    help="where --ceiling looks for the ceiling record (default: results/records)")
    args = ap.parse_args()
    if args.ceiling and args.target is not None:
        ap.error("--target and --ceiling exclude each other")
    for path in args.records:
        record = {**json.loads(path.read_text()), "path": str(path)}
        target = ceiling_target(record, args.records_dir) if args.ceiling else args.target
        print("\n".join(report(record, target)), end="\n\n")
    sys.exit(0)


def ceiling_target(record: dict, records_dir: Path) -> float:
    """The ceiling's mean validation accuracy minus ``rules.CEILING_GAP`` (prints which runs it is)."""
    row = runs.to_row(record)
    if (row["model"], row["conv"]) != rules.CEILING_NET:
        raise SystemExit(f"time_to_accuracy: --ceiling is the ceiling of {'-'.join(rules.CEILING_NET)}; "
                         f"{record['path']} is {row['model']}-{row['conv']}")
    ceiling = rules.ceiling_rows([row], runs.collect([records_dir])[0])
    if not ceiling:
        raise SystemExit(f"time_to_accuracy: no ceiling record under {records_dir} for {record['path']} (needs a "
                         f"{'-'.join(rules.CEILING_NET)} run of experiment {rules.CEILING_EXPERIMENT} on "
                         f"{row['dataset']}: python scripts/run_grid.py ceiling)")
    target = rules.ceiling_target(ceiling)
    print(f"ceiling: {len(ceiling)} run(s), {ceiling[0]['epochs']} epochs, val_acc {target + rules.CEILING_GAP:.2f} %, "
          f"test_acc {sum(r['test_acc'] for r in ceiling) / len(ceiling):.2f} % ({', '.join(r['record'] for r in ceiling)})")
    return target


if __name__ == "__main__":
    main()
