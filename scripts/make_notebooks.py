"""Generate ``notebooks/*.ipynb``: one notebook per claim that loads the results and plots them.

    python scripts/make_notebooks.py            # (re)write notebooks/
    python scripts/make_notebooks.py --check    # exit 1 if notebooks/ differs from what this writes

The cells are defined here, in Python, so that they are reviewed as source; the notebooks are
written without outputs or execution counts ("stripped") and with fixed cell ids, so regenerating
them gives byte-identical files. The markdown cell at the top of each notebook quotes the paper's
claim and number from ``experiments/claims.yaml``.

Every notebook reads two environment variables (relative paths are taken from the repo root):
``RESULTS_DIR`` (default ``results``: the committed training-free probe outputs) and ``RUNS_DIR``
(default ``results/records``: the committed run records, read with ``experiments.runs.collect``). A trained
claim without records prints how to produce them and the notebook goes on.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
CLAIMS_FILE = ROOT / "experiments" / "claims.yaml"

# ------------------------------------------------------------------ cells shared by every notebook
SETUP = '''\
import os, sys
from pathlib import Path

ROOT = Path.cwd().resolve()  # the repository root: the first parent with train.py
while not (ROOT / "train.py").exists():
    if ROOT == ROOT.parent:
        raise RuntimeError(f"no train.py above {Path.cwd()}: open the notebook inside the repository")
    ROOT = ROOT.parent
sys.path.insert(0, str(ROOT))
RESULTS_DIR = ROOT / os.environ.get("RESULTS_DIR", "results")  # training-free probe outputs
RUNS_DIR = ROOT / os.environ.get("RUNS_DIR", "results/records")  # run records (searched recursively)
print(f"RESULTS_DIR = {RESULTS_DIR}\\nRUNS_DIR = {RUNS_DIR}")'''

HELPERS = '''\
import csv, math, tempfile
import matplotlib.pyplot as plt
from experiments import report, rules, runs  # sets the Agg backend: switch back to inline plots below
%matplotlib inline


def read_csv(path):
    """Rows of a CSV file, numbers converted to float."""
    def num(v):
        try:
            return float(v)
        except ValueError:
            return v
    with open(path, newline="") as f:
        return [{k: num(v) for k, v in row.items()} for row in csv.DictReader(f)]


def show(rows, cols):
    """Print rows as an aligned text table."""
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    for line in [list(cols)] + cells:
        print("  ".join(v.rjust(w) for v, w in zip(line, widths)))


def load_runs(experiment, profile=None):
    """Finished runs of one experiment (one profile: the best one recorded) under RUNS_DIR (experiments.runs)."""
    ok, failed = runs.collect([RUNS_DIR]) if RUNS_DIR.exists() else ([], [])
    ok = [r for r in ok if r["experiment"] == experiment]
    recorded = [p for p in report.PROFILES if any(r["profile"] == p for r in ok)]
    profile = profile or (recorded[0] if recorded else next(iter({r["profile"] for r in ok}), None))
    rows = [r for r in ok if r["profile"] == profile]
    n_failed = sum(r["experiment"] == experiment and r["profile"] == profile for r in failed)
    print(f"{experiment}: {len(rows)} finished runs of profile {profile} under {RUNS_DIR}"
          + (f" ({n_failed} failed, left out)" if n_failed else ""))
    if not rows:
        print(f"no runs found under {RUNS_DIR}; run: python train.py -m experiment={experiment} profile=standard")
    return rows'''


def claim_md(title: str, names: list[str], claims: dict) -> str:
    lines = [f"# {title}", ""]
    for name in names:
        c = claims[name]
        lines += [f"**`{name}`** (document {c['doc']}, {c['paper']})", "", f"> **Claim.** {c['claim']}", ">",
                  f"> **Paper.** {c['number']}", ""]
    lines.append("Quoted from `experiments/claims.yaml`. Parameters: `RESULTS_DIR` (committed probe outputs) and "
                 "`RUNS_DIR` (run records, default `results/records`) environment variables, relative to the repo root.")
    return "\n".join(lines)


# ------------------------------------------------------------------ 000: even kernels
EVEN_DRIFT = '''\
drift = read_csv(RESULTS_DIR / "even_drift" / "drift.csv")
kinds = sorted({r["kernel"] for r in drift})
fig, ax = plt.subplots(figsize=(6, 4))
for k in kinds:
    pts = [r for r in drift if r["kernel"] == k]
    ax.plot([r["depth"] for r in pts], [r["dy"] for r in pts], marker=".", label=k.upper())
depth = [r["depth"] for r in drift if r["kernel"] == kinds[0]]
ax.plot(depth, [-d / 2 for d in depth], "k:", label="claim: -n/2")
ax.set(xlabel="layers n", ylabel="centroid drift dy (px)", title="Even kernels: feature drift vs depth")
ax.legend(); ax.grid(alpha=0.3); plt.show()
show([r for r in drift if r["depth"] == 16], ["kernel", "depth", "dy", "dx", "drift", "mass"])'''

EVEN_EROSION = '''\
erosion = read_csv(RESULTS_DIR / "even_erosion" / "erosion.csv")
fig, ax = plt.subplots(figsize=(6, 4))
for k in sorted({r["kernel"] for r in erosion}):
    pts = [r for r in erosion if r["kernel"] == k]
    ax.semilogy([r["layer"] for r in pts], [r["q"] for r in pts], label=k.upper())
ax.set(xlabel="layer n", ylabel="Q_n (mean |activation|)", title="Information erosion vs depth")
ax.legend(); ax.grid(alpha=0.3, which="both"); plt.show()
last = max(r["layer"] for r in erosion)
show(sorted((r for r in erosion if r["layer"] == last), key=lambda r: -r["q"]), ["kernel", "layer", "q", "size"])'''

TRAINED_PROBES = '''\
import json  # probes of trained nets: results/<probe>[_<profile>][_<depth>]/ (reproduce.sh writes them)
dirs = [d for d in sorted(RESULTS_DIR.glob("trained_*")) if (d / "metrics.json").exists()]
for d in dirs:
    m = json.loads((d / "metrics.json").read_text())
    print(f"{d.name}: nets of profile {m.get('profile') or 'not recorded'}, {m.get('n_runs', m.get('n_checkpoints', '?'))} runs, "
          f"verdict {m.get('verdict', '(rule in RESULTS.md)')}")
erosion = [d for d in dirs if (d / "trained_erosion.csv").exists()]
if erosion:  # mean |activation| after every residual block, one line per trained run
    rows = read_csv(erosion[-1] / "trained_erosion.csv")
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in sorted({r["run"] for r in rows}):
        pts = [r for r in rows if r["run"] == run and r["curve"] == "block"]
        ax.semilogy([r["layer"] for r in pts], [r["q"] for r in pts], label=f"{pts[0]['conv'].upper()} seed {pts[0]['seed']:.0f}")
    ax.set(xlabel="block (0 = input)", ylabel="Q (mean |activation|)", title=f"Trained nets: {erosion[-1].name}")
    ax.legend(fontsize=7); ax.grid(alpha=0.3, which="both"); plt.show()'''

EVEN_TABLE = '''\
rows = load_runs("even_kernels")
if rows:  # the same table and verdicts as RESULTS.md (experiments.rules.even_kernels)
    table, verdicts, _ = rules.even_kernels(rows, {})
    show(table, ["model", "conv", "n", "params", "macs", "test_err_mean", "test_err_std"])
    print()
    show(verdicts, ["claim", "diff", "ci_low", "ci_high", "verdict"])'''

EVEN_PLOT = '''\
if rows:
    fig, ax = plt.subplots(figsize=(6, 4))
    for conv in sorted({r["conv"] for r in table}):
        pts = sorted((r["params"] / 1e6, r["test_err_mean"], r["test_err_std"]) for r in table if r["conv"] == conv)
        x, y, e = zip(*pts)
        ax.errorbar(x, y, yerr=[0 if math.isnan(v) else v for v in e], marker="o", capsize=3, label=conv.upper())
    ax.set(xscale="log", xlabel="params (M)", ylabel="test error (%)", title="Even kernels: test error vs params")
    ax.legend(); ax.grid(alpha=0.3); plt.show()'''

# ------------------------------------------------------------------ 001: conv arithmetic + octave
ARITH_TABLE = '''\
arith = read_csv(RESULTS_DIR / "conv_arithmetic" / "arithmetic.csv")
sections = sorted({r["section"] for r in arith})
show([{"section": s, "rows": sum(r["section"] == s for r in arith),
       "agree": sum(r["section"] == s and r["agree"] == 1 for r in arith)} for s in sections], ["section", "rows", "agree"])
print(f"\\nall rows ({sum(r['agree'] == 1 for r in arith)}/{len(arith)} agree):")
show(arith, ["section", "name", "quantity", "measured", "analytic", "agree"])'''

ARITH_OCTAVE = '''\
octave = {}  # (quantity, alpha) -> measured ratio, e.g. name "OctaveConv2d a=0.125 vs Conv2d ..."
for r in arith:
    if r["section"] == "octave" and r["quantity"].endswith("ratio"):
        octave[r["quantity"], float(r["name"].split("a=")[1].split()[0])] = r["measured"]
a = [i / 100 for i in range(0, 101, 5)]
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(a, [1 - 1.5 * x + 0.75 * x * x for x in a], "C0-", label="theory MACs 1 - 1.5a + 0.75a^2")
ax.plot(a, [1 - 0.75 * x for x in a], "C1-", label="theory memory 1 - 0.75a")
for (q, al), v in octave.items():
    ax.plot(al, v, "o", color="C0" if q == "macs ratio" else "C1")
ax.set(xlabel="alpha (low-frequency fraction)", ylabel="octave / vanilla conv",
       title="OctConv cost ratios: measured (dots) vs theory (lines)")
ax.legend(); ax.grid(alpha=0.3); plt.show()'''

OCTAVE_TRAINED = '''\
rows = load_runs("octave")
if rows:
    table = rules.summary_table(rows, ("model", "alpha"), ("test_acc", "step_img_s", "saved_activation_mb"))
    show(table, ["model", "alpha", "n", "params", "macs", "test_acc_mean", "test_acc_std", "step_img_s_mean",
                 "saved_activation_mb_mean"])
    table.sort(key=lambda r: r["alpha"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for ax, key, label in zip(axes, ("test_acc_mean", "macs", "step_img_s_mean"),
                              ("test accuracy (%)", "MACs", "train step throughput (img/s)")):
        ax.plot([r["alpha"] for r in table], [r[key] for r in table], marker="o")
        ax.set(xlabel="alpha", ylabel=label, title=label); ax.grid(alpha=0.3)
    fig.suptitle("Oct-ResNet: accuracy, MACs and wall-clock vs alpha"); fig.tight_layout(); plt.show()'''

# ------------------------------------------------------------------ 002: BlurPool
BLUR_TABLE = '''\
rows = load_runs("blurpool")
if rows:  # the same table and verdicts as RESULTS.md (experiments.rules.blurpool)
    table, verdicts, _ = rules.blurpool(rows, {})
    show(table, ["model", "augment", "filt_size", "n", "test_acc_mean", "consistency_circular_mean",
                 "consistency_translate_mean"])
    print()
    show(verdicts, ["claim", "metric", "diff", "ci_low", "ci_high", "verdict"])'''

BLUR_PLOT = '''\
if rows:
    metrics = (("consistency_circular", "consistency, circular shifts (%)"),
               ("consistency_translate", "consistency, translations (%)"), ("test_acc", "test accuracy (%)"))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for m, aug in sorted({(r["model"], r["augment"]) for r in table}, key=str):
        pts = sorted((r for r in table if r["model"] == m and r["augment"] == aug), key=lambda r: r["filt_size"])
        for ax, (key, label) in zip(axes, metrics):
            ax.errorbar([r["filt_size"] for r in pts], [r[f"{key}_mean"] for r in pts], capsize=3, marker="o",
                        yerr=[0 if math.isnan(r[f"{key}_std"]) else r[f"{key}_std"] for r in pts], label=f"{m} aug={aug}")
            ax.set(xlabel="BlurPool filter size (1 = no blur)", ylabel=label, title=label)
    for ax in axes:
        ax.grid(alpha=0.3); ax.legend(fontsize=8)
    fig.tight_layout(); plt.show()'''

BLUR_DIAG = '''\
if rows:
    curves = {}  # (model, augment, filt_size) -> per-seed p(correct) curves
    for r in rows:  # the curve travels inside each run record (engine.records.small_tables)
        table = r["artifacts"].get("diagonal_stability.csv")
        if table:
            curves.setdefault((r["model"], r["augment"], r["filt_size"]), []).append([float(p["p_correct"]) for p in table])
    fig, ax = plt.subplots(figsize=(6, 4))
    for (m, aug, filt), cs in sorted(curves.items(), key=str):
        ax.plot([sum(c[i] for c in cs) / len(cs) for i in range(len(cs[0]))], marker=".",
                linestyle="-" if aug else "--", label=f"{m} f={filt} aug={aug}")
    ax.set(xlabel="diagonal circular shift (px)", ylabel="p(correct class), mean over seeds",
           title="Diagonal-shift stability")
    ax.legend(fontsize=7); ax.grid(alpha=0.3); plt.show()'''

# ------------------------------------------------------------------ 003: involution / RedNet
REDNET_PROFILE = '''\
from models import create_model
from models.complexity import profile

prof = []  # training-free: params and MACs of one 32x32 forward pass, 10 classes
for name, k in (("bottleneck26", None), ("rednet26", 3), ("rednet26", 5), ("rednet26", 7)):
    p = profile(create_model(name, num_classes=10, **({} if k is None else {"kernel_size": k})), (3, 32, 32))
    prof.append({"model": name, "K": k or "-", "params": p["params"], "macs": p["macs"]})
for r in prof:
    r["params_vs_resnet"], r["macs_vs_resnet"] = r["params"] / prof[0]["params"], r["macs"] / prof[0]["macs"]
show(prof, ["model", "K", "params", "macs", "params_vs_resnet", "macs_vs_resnet"])
fig, ax = plt.subplots(figsize=(6, 4))
for r in prof:
    ax.scatter(r["macs"] / 1e6, r["params"] / 1e6, label=f"{r['model']} K={r['K']}")
ax.set(xlabel="MACs (M, 32x32 input)", ylabel="params (M)", title="RedNet-26 vs ResNet-26 (bottleneck) cost")
ax.legend(); ax.grid(alpha=0.3); plt.show()'''

REDNET_TRAINED = '''\
rows = load_runs("rednet")
if rows:
    table = rules.summary_table(rows, ("model", "kernel_size"), ("test_acc",))
    show(table, ["model", "kernel_size", "n", "params", "macs", "test_acc_mean", "test_acc_std"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key in zip(axes, ("params", "macs")):
        for r in table:
            ax.errorbar(r[key] / 1e6, r["test_acc_mean"], yerr=0 if math.isnan(r["test_acc_std"]) else r["test_acc_std"],
                        marker="o", capsize=3, linestyle="", label=f"{r['model']} K={r['kernel_size']}")
        ax.set(xlabel=f"{key} (M)", ylabel="test accuracy (%)", title=f"accuracy vs {key}")
        ax.grid(alpha=0.3); ax.legend(fontsize=8)
    fig.tight_layout(); plt.show()'''

# ------------------------------------------------------------------ 004: dilation
DIL_VALID = '''\
valid = read_csv(RESULTS_DIR / "dilation_degeneration" / "valid_weights.csv")
fig, ax = plt.subplots(figsize=(6, 4))
for col in [c for c in valid[0] if c.startswith("frac_")]:
    ax.plot([r["rate"] for r in valid], [r[col] for r in valid], label=f"{col[5:]} valid weights")
ax.axvline(65, color="k", linestyle=":", label="map size 65")
ax.set(xlabel="atrous rate", ylabel="fraction of output positions",
       title="3x3 atrous filter on a 65x65 map: valid weights vs rate")
ax.legend(fontsize=8); ax.grid(alpha=0.3); plt.show()
print("first rate where no position keeps all 9 taps:", next(int(r["rate"]) for r in valid if r["frac_9"] == 0))
print("first rate where only the centre tap is valid everywhere:", next(int(r["rate"]) for r in valid if r["frac_1"] == 1))'''

DIL_MAE = '''\
mae = read_csv(RESULTS_DIR / "dilation_degeneration" / "dilation_mae.csv")
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot([r["rate"] for r in mae], [r["mae"] for r in mae], marker="o", label="MAE")
ax.plot([r["rate"] for r in mae], [r["rel_mae"] for r in mae], marker="s", label="relative MAE")
ax.axvline(16, color="k", linestyle=":", label="map size 16")
ax.set(xlabel="atrous rate", ylabel="|dilated 3x3 - centre-tap 1x1|",
       title="16x16 map: dilated 3x3 vs its 1x1 centre tap")
ax.legend(); ax.grid(alpha=0.3); plt.show()
show(mae, ["rate", "mae", "rel_mae"])'''


def notebook_cells(claims: dict) -> dict[str, list[tuple[str, str]]]:
    """{file name: [(cell type, source), ...]} for every notebook."""
    md, code = "markdown", "code"
    head = [(code, SETUP), (code, HELPERS)]
    return {
        "000_even_kernels.ipynb": [
            (md, claim_md("000 Even-sized kernels and symmetric padding",
                          ["even_drift", "even_erosion", "trained_drift", "trained_erosion", "even_kernels"], claims)),
            *head,
            (md, "## Drift (training-free, `results/even_drift`)\nCentroid of a blob after n stride-1 convs of each kind."),
            (code, EVEN_DRIFT),
            (md, "## Information erosion (training-free, `results/even_erosion`)"),
            (code, EVEN_EROSION),
            (md, "## Drift and erosion in trained nets (`results/trained_*`)\nThe probes read checkpoints of the "
                 "even_kernels runs of one profile and depth; `metrics.json` says which."),
            (code, TRAINED_PROBES),
            (md, "## Trained sweep `experiment=even_kernels` (records under `RUNS_DIR`)\nTest error = 100 - accuracy, mean ± std over seeds."),
            (code, EVEN_TABLE),
            (code, EVEN_PLOT),
        ],
        "001_conv_arithmetic_octave.ipynb": [
            (md, claim_md("001 Convolution arithmetic and octave convolution", ["conv_arithmetic", "octave"], claims)),
            *head,
            (md, "## Measured vs analytic (training-free, `results/conv_arithmetic/arithmetic.csv`)\n"
                 "`agree` = 1 when the measured value matches the analytic one within `tol`."),
            (code, ARITH_TABLE),
            (md, "## Octave convolution: MAC and memory ratios vs alpha"),
            (code, ARITH_OCTAVE),
            (md, "## Trained sweep `experiment=octave` (records under `RUNS_DIR`)"),
            (code, OCTAVE_TRAINED),
        ],
        "002_blurpool.ipynb": [
            (md, claim_md("002 BlurPool: anti-aliased downsampling", ["blurpool"], claims)),
            *head,
            (md, "## Trained sweep `experiment=blurpool` (records under `RUNS_DIR`)\nConsistency = % of image pairs, shifted "
                 "differently, that get the same class; mean ± std over seeds."),
            (code, BLUR_TABLE),
            (code, BLUR_PLOT),
            (md, "## Diagonal-shift stability (each run's `diagonal_stability.csv`)"),
            (code, BLUR_DIAG),
        ],
        "003_involution_rednet.ipynb": [
            (md, claim_md("003 Involution: RedNet vs ResNet", ["rednet"], claims)),
            *head,
            (md, "## Params and MACs (training-free, `models.complexity.profile`)"),
            (code, REDNET_PROFILE),
            (md, "## Trained sweep `experiment=rednet` (records under `RUNS_DIR`)"),
            (code, REDNET_TRAINED),
        ],
        "004_dilation.ipynb": [
            (md, claim_md("004 Atrous convolution degenerates to 1x1", ["dilation_degeneration"], claims)),
            *head,
            (md, "## Valid weights vs rate (training-free, `results/dilation_degeneration/valid_weights.csv`)"),
            (code, DIL_VALID),
            (md, "## Dilated 3x3 vs its centre-tap 1x1 (`results/dilation_degeneration/dilation_mae.csv`)"),
            (code, DIL_MAE),
        ],
    }


def build_notebooks() -> dict[str, nbformat.NotebookNode]:
    """The stripped notebooks: no outputs, no execution counts, fixed cell ids."""
    claims = yaml.safe_load(CLAIMS_FILE.read_text())
    out = {}
    for fname, cells in notebook_cells(claims).items():
        nb = new_notebook(metadata={
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"}})
        for i, (kind, src) in enumerate(cells):
            cell = new_markdown_cell(src) if kind == "markdown" else new_code_cell(src)
            cell["id"] = f"cell-{i:02d}"
            nb.cells.append(cell)
        nbformat.validate(nb)
        out[fname] = nb
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "notebooks"), help="output folder (default: notebooks/)")
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when a notebook differs")
    args = ap.parse_args()
    out = Path(args.out)
    stale = []
    for fname, nb in build_notebooks().items():
        path, text = out / fname, nbformat.writes(nb) + "\n"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(fname)
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        sys.exit(f"make_notebooks: out of date: {', '.join(stale)}; run: python scripts/make_notebooks.py")


if __name__ == "__main__":
    main()
