"""Per-claim tables, figures and verdicts from run records (no typed numbers).

``build_reports(ok_rows, out_dir, failed_rows)`` (rows from ``experiments.runs.collect``) writes, for each
experiment and profile, ``<out_dir>/<experiment>/<profile>/{summary,runs,verdicts,facts}.csv`` and figures,
and returns one markdown section per experiment. Rules: ``experiments.rules`` (per claim) and
``experiments.stats`` (the verdict rule); figures: ``experiments.figures``.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import yaml

from experiments import figures, rules, runs
from experiments.stats import VERDICTS

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")
REGIME = "standard"  # the profile whose verdicts test the claims (the others: cheaper paths, the ceiling)
PROFILES = {REGIME: "full-data profile, the claims' regime", "paper": "the papers' schedule",
            "quick": "quick profile: the cheap CPU path, far below the papers' regime"}
# runs.csv: one row per run, with the overrides that rerun it (python train.py <overrides>)
RUN_COLUMNS = ("record", "overrides", "variant", "seed", "test_acc", "val_acc", "consistency_circular",
               "consistency_translate", "step_img_s", "saved_activation_mb", "params", "macs", "train_time_s",
               "wall_time_s", "date", "hardware", "git_commit", "segments", "notes", "config_hash", "torch")
VERDICT_COLUMNS = ("claim", "metric", "diff", "ci_low", "ci_high", "n_a", "n_b", "verdict")
FACT_COLUMNS = ("claim", "metric", "measured", "expected")


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        fields = list(dict.fromkeys(k for r in rows for k in r))  # union of keys, first-seen order
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def md_table(rows: list[dict], columns: tuple[str, ...] | None = None) -> str:
    head = list(columns or rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_fmt(r.get(h, "")) for h in head) + " |" for r in rows]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.2f}"
    return str(v)


def tally(verdicts: list[dict]) -> str:
    """Counts of the three verdicts (rows without a verdict are not counted)."""
    counts = {v: sum(r["verdict"] == v for r in verdicts) for v in VERDICTS}
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no verdict yet"


def budget(row: dict, varied: tuple[str, ...] = ()) -> str:
    """The data, schedule and recipe a run trained with (what every variant of a claim must share), without
    the keys the experiment varies on purpose (``rules.VARIES``)."""
    parts = [f"{row['dataset']}", f"{row['train_subset'] or 'all'} train images", f"{row['epochs']} epochs"]
    if "precision" not in varied:
        parts.append(f"{row.get('precision') or '?'}")
    return ", ".join(parts + [f"{k} {_fmt_knob(row.get(k))}" for k in rules.RECIPE if k not in varied])


def _provenance(rows: list[dict], failed: list[dict], varied: tuple[str, ...] = ()) -> str:
    def listed(key: str, label: str) -> str:  # over every segment of every run
        vals = sorted({v for r in rows for v in str(r.get(key)).split(runs.SEP)})
        return f"{label}{' (MIXED)' if len(vals) > 1 else ''}: {'; '.join(vals)}"

    budgets = sorted({budget(r, varied) for r in rows})
    resumed, partial = sum(r.get("segments", 0) > 1 for r in rows), sum(bool(r.get("partial_provenance")) for r in rows)
    noted = sum(bool(r.get("notes")) for r in rows)
    return (f"Runs: {len(rows)} ok, {len(failed)} failed; budget{' (MIXED)' if len(budgets) > 1 else ''}: "
            f"{'; '.join(budgets)}. {listed('hardware', 'Hardware')}. "
            f"{listed('git_commit', 'Code')}"
            f"{' (unknown = backfilled from the runs.csv of commit d883c42)' if any(r['backfilled'] for r in rows) else ''}. "
            f"{f'{resumed} run(s) resumed, each segment listed above. ' if resumed else ''}"
            f"{f'{partial} run(s) {runs.UNSEGMENTED}. ' if partial else ''}"
            f"{f'{noted} run(s) resumed with a note (runs.csv: notes), e.g. a data generator reseeded on another device type. ' if noted else ''}"
            f"Dates {min(r['date'] for r in rows)} to {max(r['date'] for r in rows)} (UTC).")


def _fmt_knob(v) -> str:
    return "?" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _figures(exp: str, table, rows, out: Path, profile: str) -> list[str]:
    title = f"({profile} profile, mean ± std over seeds)"
    if exp == "even_kernels":
        return [figures.err_vs_params(table, rules.EVEN_KINDS, out / "error_vs_params.png", f"Even kernels {title}")]
    if exp == "blurpool":
        return [figures.blurpool_curves(table, out / "consistency_vs_filter.png", f"BlurPool {title}"),
                figures.diagonal_stability(rows, out / "diagonal.png", f"diagonal-shift stability {title}")]
    if exp in ("rednet", "octave"):
        knob = "kernel_size" if exp == "rednet" else "alpha"
        return [figures.acc_vs_cost(table, knob, "macs", out / "accuracy_vs_macs.png", f"{exp} {title}")]
    return []


def profile_section(exp: str, profile: str, rows, failed, claim: dict, out: Path,
                    extra_facts: list[dict] = ()) -> tuple[str, list[dict]]:
    """Tables, CSVs, figures and the markdown of one (experiment, profile)."""
    table, verdicts, facts = rules.CLAIMS.get(exp, rules.generic)(rows, claim)
    facts = [*facts, *extra_facts]
    varied = rules.VARIES.get(exp, ())
    recipes = {budget(r, varied) for r in rows}
    if len(recipes) > 1:  # every variant of a claim must share one recipe: no verdict across recipes
        verdicts = [{**v, "verdict": f"no verdict: the runs mix {len(recipes)} budgets/recipes (see the budget line)"}
                    for v in verdicts]
    write_csv(out / "summary.csv", table)
    write_csv(out / "runs.csv", [{k: r.get(k) for k in RUN_COLUMNS if k in r} for r in rows])
    for name, data in (("verdicts.csv", verdicts), ("facts.csv", facts)):
        if data:
            write_csv(out / name, data)
    rel = f"{exp}/{profile}"
    md = [f"### {exp}, {profile} profile ({PROFILES.get(profile, 'custom profile')})", "", _provenance(rows, failed, varied),
          "", md_table(table), "", f"Every run with the overrides that rerun it: [runs.csv]({rel}/runs.csv).", ""]
    if verdicts:
        md += ["Verdicts (95% Welch interval of the difference over seeds; rule in experiments/stats.py; img/s "
               "only between runs on one kind of hardware, named in the claim):", "",
               md_table(verdicts, VERDICT_COLUMNS), ""]
    if facts:
        md += ["Measured facts (by construction or measured once: values, not verdicts):", "",
               md_table(facts, FACT_COLUMNS), ""]
    if failed:
        md += ["Failed runs (kept, never dropped):", "", md_table(
            [{"record": r["record"], "variant": r["variant"], "seed": r["seed"], "error": r.get("error", "")}
             for r in failed]), ""]
    md += [f"![{f}]({rel}/{f})" for f in _figures(exp, table, rows, out, profile)]
    return "\n".join(md) + "\n", verdicts


def build_reports(rows, out_dir: str | Path, failed: list[dict] | tuple = ()) -> dict[str, dict[str, Any]]:
    """{experiment: {"md": markdown, "verdicts": {profile: [verdict rows]}}} for every experiment recorded; a
    claim without ``REGIME`` records gets a stub section saying so (verdicts None: not run yet)."""
    claims = yaml.safe_load(CLAIMS_FILE.read_text())
    order = {p: i for i, p in enumerate(PROFILES)}
    sections: dict[str, dict[str, Any]] = {}
    ok = rules.group(rows, ("experiment", "profile"))
    for exp, profile in sorted({*ok, *rules.group(failed, ("experiment", "profile"))},
                               key=lambda k: (k[0], order.get(k[1], 99))):
        bad = [r for r in failed if (r["experiment"], r["profile"]) == (exp, profile)]
        out = Path(out_dir) / exp / profile
        if (exp, profile) in ok:
            ceiling = rules.ceiling_facts(ok[(exp, profile)], rows) if (exp, profile) == ("even_kernels", REGIME) else []
            md, verdicts = profile_section(exp, profile, ok[(exp, profile)], bad, claims.get(exp, {}), out, ceiling)
        else:
            md, verdicts = f"### {exp}, {profile} profile\n\nNo finished run; {len(bad)} failed:\n\n" + md_table(
                [{"record": r["record"], "error": r.get("error", "")} for r in bad]) + "\n", []
        sec = sections.setdefault(exp, {"md": f"## {exp}\n\n", "verdicts": {}})
        sec["md"] += md + "\n"
        sec["verdicts"][profile] = verdicts
    for exp, sec in sections.items():  # a claim recorded only off the claims' regime says that regime is pending
        if exp in claims and REGIME not in sec["verdicts"]:
            head, rest = sec["md"].split("\n\n", 1)
            sec["md"] = (f"{head}\n\n### {exp}, {REGIME} profile ({PROFILES[REGIME]})\n\nNo run recorded yet: "
                         f"`python scripts/run_grid.py {REGIME} --dry-run` lists what is left, "
                         f"`python scripts/run_grid.py {REGIME}` continues the grid.\n\n{rest}")
            sec["verdicts"] = {REGIME: None, **sec["verdicts"]}
    return sections
