"""Generate per-claim tables, figures and verdicts from run dirs.

    python scripts/report.py multirun/even_kernels multirun/blurpool --out results
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments.report import build_reports, collect  # noqa: E402
from experiments.results_md import render, update_readme  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", help="run or sweep dirs (searched recursively for metrics.json)")
    ap.add_argument("--out", default="results", help="output folder (default: results)")
    ap.add_argument("--results-md", default=None, help="also write this RESULTS.md (probes read from --out)")
    ap.add_argument("--readme", default=None, help="copy the verdict table into this README's results block")
    args = ap.parse_args()
    ok, failed = collect(args.runs)
    if not ok and not args.results_md:
        sys.exit(f"report: no finished training runs under {', '.join(args.runs)}")
    sections = build_reports(ok, args.out)
    for section in sections.values():
        print(section["md"])
    if args.results_md:
        text = render(args.out, sections)
        Path(args.results_md).write_text(text)
        print(f"report: wrote {args.results_md}")
        if args.readme:
            update_readme(args.readme, text)
    if failed:
        print(f"report: {len(failed)} failed runs were left out:", *[r["run_dir"] for r in failed], sep="\n  ")


if __name__ == "__main__":
    main()
