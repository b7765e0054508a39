"""Generate per-claim tables, figures, verdicts and RESULTS.md from the committed run records.

    python scripts/report.py                       # results/records -> results/<claim>/<profile>/
    python scripts/report.py --results-md RESULTS.md --readme README.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from experiments.grid import progress_md  # noqa: E402
from experiments.report import REGIME, build_reports  # noqa: E402
from experiments.results_md import render, update_readme  # noqa: E402
from experiments.runs import collect  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="*", default=[str(ROOT / "results" / "records")],
                    help="record files or folders (default: results/records)")
    ap.add_argument("--out", default=str(ROOT / "results"), help="output folder (default: results)")
    ap.add_argument("--results-md", default=None, help="also write this RESULTS.md (probes read from --out)")
    ap.add_argument("--readme", default=None, help="copy the verdict table into this README's results block")
    args = ap.parse_args()
    ok, failed = collect(args.records)
    if not ok and not failed and not args.results_md:
        sys.exit(f"report: no run records under {', '.join(args.records)}")
    sections = build_reports(ok, args.out, failed)
    for section in sections.values():
        print(section["md"])
    if args.results_md:
        Path(args.results_md).write_text(render(args.out, sections, progress=progress_md(REGIME, ok + failed)))
        print(f"report: wrote {args.results_md}")
        if args.readme:
            update_readme(args.readme, Path(args.results_md).read_text())
    if failed:
        print(f"report: {len(failed)} failed runs (shown in their sections):", *[r["record"] for r in failed],
              sep="\n  ")


if __name__ == "__main__":
    main()
