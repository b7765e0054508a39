"""Probe: information erosion in *trained* even-kernel networks (Wu et al., NeurIPS 2019, E2; PAPERS.md 1.2).

Outputs: ``trained_erosion.csv`` (run, conv, seed, curve, layer, size, q), ``trained_erosion.png``.
"""
from __future__ import annotations

import math
import os

from engine.checkpoint import model_from_state
from experiments.even_erosion import trained_q
from experiments.probe_utils import log_outputs, plt, write_csv, write_readme
from experiments.stats import MIN_N, VERDICTS, verdict
from experiments.probe_records import describe, sample
from experiments.trained_nets import test_images

SETUP = """\
For each checkpoint (a ``checkpoints/last.pt`` of a CIFAR ResNet run), Q_n = mean |activation| is taken
after every spatial conv (curve ``conv``) and after every residual block (curve ``block``: after BN, the
shortcut add and ReLU) on the first ``images`` test images of the run's own dataset, normalised as in
training, eval mode (``experiments.even_erosion.trained_q``). Layer 0 is the input. A conv's output
scale is arbitrary in a net with BN after every conv, so the rule uses the block curve.

Rule (over runs, i.e. seeds; ``experiments.stats.verdict``, 95% Welch interval): the per-run value is
log10 Q at the last block. The claim, that C2 erodes faster than the symmetric kernels, is reproduced
when both C2sp - C2 and C3 - C2 lie above 0, not reproduced when either lies below 0, inconclusive
otherwise; with fewer than 2 runs of a kind there is no verdict.

The sample: every finished run whose checkpoint is on the probing machine (measured, and written as a probe record
beside its run record), plus the committed probe records of runs measured elsewhere (``experiments.probe_records``).
One row set per run, one recipe per sample."""
CLAIM = "Information erodes faster through C2 than through C2sp and C3, in trained networks too."
COLUMNS = ["run", "conv", "seed", "curve", "layer", "size", "q"]
PAIRS = (("c2sp", "c2"), ("c3", "c2"))  # (claimed to keep more, baseline)


def measure(images: int, cache: dict):
    """The probe's measurement of one run: one row per curve and layer."""
    def one(state: dict) -> list[dict]:
        cfg = state["config"]
        return [{"conv": cfg["model"].get("conv", "?"), "seed": cfg["seed"], "curve": r["kernel"].split("_", 1)[1],
                 "layer": r["layer"], "size": r["size"], "q": r["q"]}
                for r in trained_q(model_from_state(state).float(), None, x=test_images(state, images, cache),
                                   label="t")]
    return one


def compute(checkpoints: str, images: int, model: str | None, experiment: str | None,
            profile: str | None, records: str | None = None) -> list[dict]:
    """The sample's runs (``experiments.probe_records.sample``), each with one row per curve and layer."""
    return sample("trained_erosion", measure(images, {}), checkpoints, experiment, model, profile,
                  {"images": images}, records)


def last_block_log_q(rows: list[dict]) -> dict[str, list[float]]:
    """Per conv kind: log10 Q at the last block of each run."""
    last: dict[tuple[str, str], dict] = {}
    for r in rows:
        key = (r["conv"], r["run"])
        if r["curve"] == "block" and int(r["layer"]) >= int(last.get(key, {"layer": -1})["layer"]):
            last[key] = r
    out: dict[str, list[float]] = {}
    for (conv, _), r in sorted(last.items()):
        out.setdefault(conv, []).append(math.log10(max(float(r["q"]), 1e-300)))  # a dead net: Q = 0 -> -300
    return out


def summarise(rows: list[dict]) -> dict:
    """Mean log10 Q at the last block per kind, the two Welch intervals and the combined verdict."""
    per_kind = last_block_log_q(rows)
    metrics: dict = {}
    for conv, vals in per_kind.items():
        metrics[f"log10_q_last_block_{conv}"] = sum(vals) / len(vals)
        metrics[f"runs_{conv}"] = len(vals)
    parts = []
    for a, b in PAIRS:
        if a in per_kind and b in per_kind:
            v = verdict(per_kind[a], per_kind[b])
            metrics.update({f"{a}_minus_{b}": v["diff"], f"{a}_minus_{b}_ci_low": v["ci_low"],
                            f"{a}_minus_{b}_ci_high": v["ci_high"], f"{a}_vs_{b}": v["verdict"]})
            parts.append(v["verdict"])
    metrics["verdict"] = combine(parts, len(PAIRS))
    return metrics


def combine(parts: list[str], needed: int) -> str:
    """Both pairs reproduced -> reproduced; either not reproduced -> not reproduced; a missing pair or
    interval -> no verdict; else inconclusive."""
    if len(parts) < needed or any(p not in VERDICTS for p in parts):
        return f"no verdict: needs at least {MIN_N} runs each of C2, C2sp and C3"
    if all(p == "reproduced" for p in parts):
        return "reproduced"
    return "not reproduced" if "not reproduced" in parts else "inconclusive"


def run(out_dir: str, logger, checkpoints: str = "multirun", images: int = 1000, model: str | None = None,
        experiment: str | None = "even_kernels", profile: str | None = None, records: str | None = None) -> dict:
    """``checkpoints``, ``model``, ``experiment``, ``profile``, ``records``: which runs, as in
    ``experiments.trained_drift``."""
    runs = compute(checkpoints, images, model, experiment, profile, records)
    rows = [row for r in runs for row in r["rows"]]
    names, profiles = sorted({r["model"] for r in runs}), sorted({str(r["profile"]) for r in runs})
    os.makedirs(out_dir, exist_ok=True)
    write_csv(os.path.join(out_dir, "trained_erosion.csv"), COLUMNS, rows)
    plot(rows, os.path.join(out_dir, "trained_erosion.png"), ", ".join(names), ", ".join(profiles))
    metrics = {**summarise(rows), **describe(runs)}
    write_readme(out_dir, "trained_erosion: Q_n in trained even-kernel networks (Wu et al. 2019, E2)", SETUP,
                 metrics, ["trained_erosion.csv", "trained_erosion.png"], claim=CLAIM)
    log_outputs(logger, out_dir, {"trained_erosion": "trained_erosion.csv"}, {"trained_erosion": "trained_erosion.png"})
    return metrics


def plot(rows: list[dict], path: str, models: str, profiles: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), squeeze=False)
    colors = dict(zip(sorted({r["conv"] for r in rows}), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, curve in zip(axes[0], ("block", "conv")):
        seen = set()
        for run in sorted({r["run"] for r in rows}):
            rs = [r for r in rows if r["run"] == run and r["curve"] == curve]
            conv = rs[0]["conv"]
            ax.plot([r["layer"] for r in rs], [r["q"] for r in rs], color=colors[conv], lw=1, alpha=0.8,
                    label=None if conv in seen else conv.upper())
            seen.add(conv)
        ax.set_yscale("log")
        ax.set_xlabel(f"{curve} index (0 = input)")
        ax.set_ylabel("Q = mean |activation|")
        ax.set_title(f"after every {curve}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"Trained {models} ({profiles} profile), one line per run, test images", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
