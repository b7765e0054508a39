"""One-time migration: probe records for the trained-probe outputs made before probe records existed.

The committed ``results/trained_{drift,erosion}_<profile>[_<model>]/`` dirs hold the rows each probe measured, one
run per (conv, seed), in a CSV, and the command, date and git revision in their README. The nets' checkpoints are
gone with the machines that trained them, so this script turns each run's CSV rows into a probe record
(``experiments.probe_records``) beside the run record of the same profile, model, conv and seed, with the probe run's
commit and date, ``hardware`` unknown, and a ``backfilled_from`` note. Probes then read these runs from the records.

    python scripts/backfill_probe_records.py results/trained_drift_standard ... [--records results/records]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from engine.checkpoint import write_json_atomic  # noqa: E402
from experiments.probe_records import beside, make  # noqa: E402
from experiments.probe_utils import number, read_csv  # noqa: E402
from experiments.runs import read_records  # noqa: E402

PROBES = ("trained_drift", "trained_erosion")
DEFAULT_IMAGES = 1000  # configs/experiment/trained_{drift,erosion}.yaml, unchanged since the probes were written


def _readme(out_dir: Path) -> dict[str, str]:
    """The probe run's command options, date and git revision, as its README states them."""
    text = (out_dir / "README.md").read_text()
    command = re.search(r"^- command: `(.*)`$", text, re.M)[1]
    opts = dict(re.findall(r"probe\.(model|profile|images|experiment)=(\S+)", command))
    rev = re.search(r"^- git revision: (\S+)( \(\+ uncommitted changes\))?$", text, re.M)
    sha = subprocess.run(["git", "rev-parse", rev[1]], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {**opts, "date": re.search(r"^- date: (.*?)(?: UTC)?$", text, re.M)[1], "commit": sha.strip(),
            "dirty": bool(rev[2])}


def backfill(out_dir: Path, records_dir: Path) -> list[Path]:
    probe = next(p for p in PROBES if (out_dir / f"{p}.csv").exists())
    info = _readme(out_dir)
    experiment, model = info.get("experiment", "even_kernels"), info.get("model", "resnet20")
    runs = {(r["experiment"], r["profile"], r["config"]["model"]["name"], r["config"]["model"].get("conv"), r["seed"]): r
            for r in read_records([records_dir]) if r["status"] == "ok"}
    by_run: dict[str, list[dict]] = {}
    for row in read_csv(out_dir / f"{probe}.csv"):
        by_run.setdefault(row.pop("run"), []).append({k: number(v) for k, v in row.items()})
    written = []
    for net, rows in by_run.items():
        key = (experiment, info["profile"], model, rows[0]["conv"], rows[0]["seed"])
        if key not in runs:
            raise SystemExit(f"backfill: no run record of {key} under {records_dir} for {out_dir} ({net})")
        rec = runs[key]
        config = {**rec["config"], "experiment_name": rec["experiment"], "profile_name": rec["profile"],
                  "variant": rec["variant"], "seed": rec["seed"]}
        pr = make(probe, config, rec["config_hash"], rows, {"images": int(info.get("images", DEFAULT_IMAGES))},
                  git={"commit": info["commit"], "dirty": info["dirty"]}, date=info["date"],
                  hardware="unknown (the probe's README names only an x86_64 CPU)",
                  backfilled_from=f"{out_dir.relative_to(ROOT)}/{probe}.csv (net of {net}; its checkpoint is gone)")
        path = beside(ROOT / rec["path"], probe)
        write_json_atomic(pr, path)
        written.append(path)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="results/trained_{drift,erosion}_* probe output dirs")
    ap.add_argument("--records", type=Path, default=ROOT / "results" / "records")
    args = ap.parse_args()
    for d in args.dirs:
        paths = backfill(d.resolve(), args.records)
        print(f"{d}: {len(paths)} probe record(s), e.g. {paths[0].relative_to(ROOT)}")


if __name__ == "__main__":
    main()
