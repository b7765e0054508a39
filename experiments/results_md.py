"""Generate RESULTS.md: for each claim, the paper's statement and number (experiments/claims.yaml,
quoted from PAPERS.md), ours (from run dirs), the verdict computed by code, and the figure.

Training-free probes are read from ``results/<probe>/metrics.json``; trained claims from the
sections ``experiments.report.build_reports`` returns. Nothing here is typed by hand.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import yaml

from experiments.report import tally
from experiments.stats import MIN_N
from models.layers import SPATIAL_KINDS

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")


def _verdict(ok: bool) -> str:
    return "reproduced" if ok else "not reproduced"


def drift_verdict(m: dict) -> tuple[str, str]:
    n = 16
    c2 = (m["dy_c2_at_16"], m["dx_c2_at_16"])
    others = max(abs(m[f"drift_{k}_at_16"]) for k in ("c2sp", "c3", "c4sp", "c5"))
    ok = all(abs(v + n / 2) <= 0.5 for v in c2) and others <= 0.5
    return (f"after {n} layers C2 drifted (dy, dx) = ({c2[0]:.2f}, {c2[1]:.2f}) px (claim: -{n // 2}); "
            f"C2sp/C3/C4sp/C5 at most {others:.2g} px", _verdict(ok) + " (rule: |C2 drift + n/2| <= 0.5 px, "
            "symmetric kernels <= 0.5 px)")


def erosion_verdict(m: dict) -> tuple[str, str]:
    q = {k: m[f"q_last_{k}"] for k in SPATIAL_KINDS}
    ok = max(q["c2"], q["c4"]) < min(q["c3"], q["c5"], q["c2sp"], q["c4sp"])
    ours = ", ".join(f"{k.upper()} {v:.2g}" for k, v in sorted(q.items(), key=lambda kv: -kv[1]))
    return f"Q at layer 54: {ours}", _verdict(ok) + " (rule: C2 and C4 below every symmetric kernel at layer 54)"


def dilation_verdict(m: dict) -> tuple[str, str]:
    size, mae_size = m["map_size"], m["mae_map_size"]  # the probe's map sizes: the thresholds follow them
    rule = (" (rule, 3x3 filter, dilation r, S x S map: no position keeps all 9 taps from r = ceil(S/2), only "
            "the centre tap is valid everywhere from r = S, and the dilated conv equals its centre-tap 1x1 from "
            "r = S of the MAE map: each exactly)")
    ours = (f"{size}x{size} map: no position keeps all 9 taps from rate {m['rate_frac9_zero']}; only the centre tap "
            f"is valid everywhere from rate {m['rate_frac1_one']}; {mae_size}x{mae_size} map: dilated 3x3 = its "
            f"centre-tap 1x1 (MAE 0) from rate {m['rate_mae_zero']} (MAE at rate {mae_size - 1}: "
            f"{m.get(f'mae_rate_{mae_size - 1}', float('nan')):.3g})")
    if m.get("kernel_size", 3) != 3:
        return ours, f"no verdict: the rule is stated for 3x3 filters, the probe ran K={m['kernel_size']}"
    if -1 in (m["rate_frac9_zero"], m["rate_frac1_one"], m["rate_mae_zero"]):  # the probe's rates stop too early
        return ours, "no verdict: the probe's largest rate is below a map size (rate -1 = never reached)" + rule
    ok = (m["rate_frac9_zero"] == (size + 1) // 2 and m["rate_frac1_one"] == size and m["rate_mae_zero"] == mae_size)
    return ours, _verdict(ok) + rule


def arithmetic_verdict(m: dict) -> tuple[str, str]:
    alphas = {"0125": 0.125, "025": 0.25, "05": 0.5, "075": 0.75}
    mac_err = max(abs(m[f"octave_mac_ratio_a{k}"] - (1 - 1.5 * a + 0.75 * a * a)) for k, a in alphas.items())
    mem_err = max(abs(m[f"octave_mem_ratio_a{k}"] - (1 - 0.75 * a)) for k, a in alphas.items())
    ok = m["all_agree"] == 1 and mac_err <= 0.01 and mem_err <= 0.01
    return (f"{m['n_rows'] - m['n_disagree']}/{m['n_rows']} rows agree (counts, output sizes, receptive fields); "
            f"octave at alpha 0.125: MACs {m['octave_mac_ratio_a0125']:.3f}, memory {m['octave_mem_ratio_a0125']:.3f} "
            f"(max deviation from theory {max(mac_err, mem_err):.2g})",
            _verdict(ok) + " (rule: every row agrees; octave ratios within 0.01 of theory)")


def _nets(m: dict) -> str:
    """Which trained nets a probe read: their profile (older probe outputs did not record it), and how many of them
    came from committed probe records rather than checkpoints on the probing machine."""
    nets = f"{m['profile']}-profile nets" if m.get("profile") else "nets of an earlier sweep (profile not recorded)"
    if m.get("n_from_records"):
        nets += f" ({m['n_from_records']} of {m['n_runs']} read from committed probe records)"
    return nets


DRIFT_RULE = "rule: C2 up-left in every run and C2sp's mean offset below half of C2's"


def trained_drift_verdict(m: dict) -> tuple[str, str]:
    if "offset_last_stage_c2" not in m or "offset_last_stage_c2sp" not in m:
        have = ", ".join(f"{k.rsplit('_', 1)[1].upper()} {m[k]:.2f} px (n={m.get('runs_' + k.rsplit('_', 1)[1], '?')})"
                         for k in sorted(m) if k.startswith("offset_last_stage_"))
        missing = " or ".join(k.upper() for k in ("c2", "c2sp") if f"offset_last_stage_{k}" not in m)
        return (f"{_nets(m)}, last (8x8) stage: mean |offset| {have or 'no runs'}; no {missing} runs",
                "no verdict: needs trained C2 and C2sp runs")
    c2, sp = m["offset_last_stage_c2"], m["offset_last_stage_c2sp"]
    ours = (f"{_nets(m)}, last (8x8) stage: C2 centroid offset (dy, dx) = ({m['dy_last_stage_c2']:.2f}, "
            f"{m['dx_last_stage_c2']:.2f}) px, up-left in {m['up_left_runs_c2']}/{m['runs_c2']} runs; "
            f"mean |offset| C2 {c2:.2f} px (n={m['runs_c2']}) vs C2sp {sp:.2f} px (n={m['runs_c2sp']}), "
            f"C3 {m.get('offset_last_stage_c3', float('nan')):.2f} px")
    if min(m["runs_c2"], m["runs_c2sp"]) < MIN_N:  # one seed is not "every run"
        return ours, f"no verdict: needs at least {MIN_N} runs each of C2 and C2sp ({DRIFT_RULE})"
    ok = m["up_left_runs_c2"] == m["runs_c2"] and sp < c2 / 2
    return ours, _verdict(ok) + f" ({DRIFT_RULE})"


def trained_erosion_verdict(m: dict) -> tuple[str, str]:
    q = ", ".join(f"{k.upper()} {10 ** m[f'log10_q_last_block_{k}']:.3g} (n={m[f'runs_{k}']})"
                  for k in ("c2", "c2sp", "c3") if f"log10_q_last_block_{k}" in m)
    diffs = "; ".join(f"{a.upper()} - {b.upper()} {m[f'{a}_minus_{b}']:+.3f} (CI {m[f'{a}_minus_{b}_ci_low']:+.3f} to "
                      f"{m[f'{a}_minus_{b}_ci_high']:+.3f})" for a, b in (("c2sp", "c2"), ("c3", "c2"))
                      if f"{a}_minus_{b}" in m and m[f"{a}_minus_{b}_ci_low"] == m[f"{a}_minus_{b}_ci_low"])
    return (f"{_nets(m)}: Q at the last block (geometric mean over runs) {q}" + (f"; log10 differences {diffs}"
                                                                                 if diffs else ""),
            m["verdict"] + " (rule: 95% Welch intervals over runs of log10 Q at the last block, C2sp - C2 and "
            "C3 - C2, both above 0; experiments/trained_erosion.py)")


def paper_tables_verdict(m: dict) -> tuple[str, str]:
    ok = m["n_unexplained"] == 0 and m["n_match"] + m["n_explained"] == m["n_rows"]
    rednet = ", ".join(f"RedNet-{d} {m[f'rednet{d}_macs_mmcv_agg_g']:.3f} G (our profile {m[f'rednet{d}_macs_g']:.3f} G)"
                       for d in (26, 50) if f"rednet{d}_macs_g" in m)
    return (f"{m['n_params_match']}/{m['n_params_rows']} params and {m['n_macs_match']}/{m['n_macs_rows']} MACs rows "
            f"match ({m.get('n_convention', 0)} of them under the stated RedNet README convention: 7x7 stem "
            f"involution, mmcls get_flops + involution aggregation); {m['n_explained']} rows explained (the poster "
            f"printed them truncated, checked digit by digit), {m['n_unexplained']} unexplained "
            f"(results/paper_tables/paper_tables.md); RedNet MACs under the README convention: {rednet}",
            _verdict(ok) + f" (rule: every row within the printed precision, under the row's stated counting "
            f"convention where it has one, or explained by a printing convention the probe checks; "
            f"{m['n_match']}/{m['n_rows']} rows match, {m['n_explained']} explained)")


TRAINED = ("trained_drift", "trained_erosion")  # probes of trained nets: their outputs name the profile read
PROBES: dict[str, tuple[Callable[[dict], tuple[str, str]], str]] = {
    "even_drift": (drift_verdict, "feature_maps.png"),
    "even_erosion": (erosion_verdict, "erosion.png"),
    "trained_drift": (trained_drift_verdict, "trained_drift.png"),
    "trained_erosion": (trained_erosion_verdict, "trained_erosion.png"),
    "dilation_degeneration": (dilation_verdict, "valid_weights.png"),
    "conv_arithmetic": (arithmetic_verdict, "octave_ratios.png"),
    "paper_tables": (paper_tables_verdict, "paper_tables.png"),
}


def _label(name: str, tag: str, several: bool, m: dict, ok: bool) -> str:
    """How the summary table tells a probe's outputs apart: their dir's tag where the probe has ``several`` dirs,
    and always for a trained probe (its row names the nets' profile); "earlier nets" for a trained probe's ``ok``
    output that does not record that profile."""
    trained = name in TRAINED
    earlier = trained and ok and not m.get("profile")
    return ", ".join(x for x in (tag if several or trained else "", "earlier nets" if earlier else "") if x)


def _tally(by_profile: dict[str, list[dict]]) -> str:
    """Verdict counts per profile (None: not run yet); measured facts and rows without a verdict are not counted."""
    return "; ".join(f"{profile}: {'not run yet' if v is None else tally(v)}" for profile, v in by_profile.items())


def render(results_dir: str | Path, trained_sections: dict[str, dict], missing_note: str = "",
           progress: str = "") -> str:
    """The whole RESULTS.md text; ``progress`` (a section, e.g. ``experiments.grid.progress_md``) follows the
    verdict table."""
    results_dir = Path(results_dir)
    claims = yaml.safe_load(CLAIMS_FILE.read_text())
    out = ["# Results", "",
           "Generated by `python scripts/report.py --results-md RESULTS.md` from the committed run records "
           "(`results/records`) and probe outputs; do not edit by hand. Verdict rules: training-free claims "
           "state theirs; trained claims use a 95% Welch interval of the difference over seeds "
           "(`experiments/stats.py`). Tallies count verdicts only (reproduced / not reproduced / "
           "inconclusive); measured facts (counts and ratios that hold by construction, one-off time and "
           "memory measurements) are listed with their values and never tallied. Trained claims are reported "
           "per profile: `standard` (full data, the claims' regime) and `quick` (the cheap CPU path).", ""]
    summary = []
    for name, claim in claims.items():
        head = [f"## {name} (document {claim['doc']}: {claim['paper']})", "", f"**Claim.** {claim['claim']}", "",
                f"**Paper.** {claim['number']}", ""]
        # a probe's results/<name>/ and its variants results/<name>_<variant>/ (e.g. trained_drift_resnet56)
        dirs = [d for d in [results_dir / name, *sorted(results_dir.glob(f"{name}_*"))]
                if (d / "metrics.json").exists()]
        if name in PROBES and dirs:
            fn, fig = PROBES[name]
            body, verdicts = [], []
            for d in dirs:
                m = json.loads((d / "metrics.json").read_text())
                ok = m.get("status", "ok") == "ok"
                ours, verdict = (fn(m) if ok else  # a failed probe is shown, never read
                                 (f"the probe failed: {m.get('error', 'no error recorded')}", "no verdict: the probe failed"))
                tag = f" {d.name[len(name) + 1:]}" if d.name != name else ""
                body += [f"**Ours{tag}** ({m.get('date', '?')} UTC, `results/{d.name}/README.md` has the "
                         f"command): {ours}.", "", f"**Verdict{tag}:** {verdict}.", "", f"![{d.name}]({d.name}/{fig})", ""]
                label = _label(name, tag.strip(), len(dirs) > 1, m, ok)
                verdicts.append(verdict.split(" (")[0] + (f" ({label})" if label else ""))
            summary.append((name, claim["doc"], "; ".join(verdicts)))
        elif name in trained_sections:
            body = ["**Ours:**", trained_sections[name]["md"].split("\n", 1)[1]]
            summary.append((name, claim["doc"], _tally(trained_sections[name]["verdicts"])))
        else:
            body = [f"**Ours:** not run yet{missing_note}.", ""]
            summary.append((name, claim["doc"], "not run"))
        out += head + body
    for name in sorted(set(trained_sections) - set(claims)):  # recorded runs that test no paper claim
        out += [f"## {name} (not a paper claim; not in the table above)", "",
                trained_sections[name]["md"].split("\n", 1)[1]]
    table = ["| claim | document | verdict |", "|---|---|---|"] + [f"| {n} | {d} | {v} |" for n, d, v in summary]
    return "\n".join(out[:4] + table + [""] + ([progress] if progress else []) + out[4:]).replace("](", "](results/").replace("](results/http", "](http")


README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def update_readme(readme: str | Path, results_md: str) -> None:
    """Copy RESULTS.md's verdict table into README.md between the results markers."""
    text = Path(readme).read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} has no {README_START} ... {README_END} block")
    lines = results_md.splitlines()
    start = lines.index("| claim | document | verdict |")
    end = start + next(i for i, line in enumerate(lines[start:]) if not line.startswith("|"))
    block = "\n".join(["", "Verdicts at the committed budget (copied from RESULTS.md by scripts/report.py):", "",
                       *lines[start:end], ""])
    head, rest = text.split(README_START, 1)
    Path(readme).write_text(head + README_START + block + README_END + rest.split(README_END, 1)[1])
