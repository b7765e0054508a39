"""Probe: where do a *trained* network's features sit? (Wu et al., NeurIPS 2019, E1 / PAPERS.md 1.5c)

Outputs: ``trained_drift.csv`` (run, conv, seed, size, dy, dx), ``trained_drift.png``.
"""
from __future__ import annotations

import os
from collections import OrderedDict

import torch

from engine.checkpoint import model_from_state
from engine.validate import ConfigError
from experiments.even_drift import centroid
from experiments.probe_utils import log_outputs, plt, write_csv, write_readme
from experiments.probe_records import describe, sample
from experiments.trained_nets import test_images

SETUP = """\
For each checkpoint (a ``checkpoints/last.pt`` of a CIFAR ResNet run), the mean |activation| map
of the last block of every stage (32x32, 16x16, 8x8; the model's ``forward_stages``) is averaged
over the first ``images`` test images of the run's own dataset (normalised as in training, eval
mode). Its intensity-weighted centroid minus the map centre is the drift, in pixels of that stage
(negative = up / left). The claim: a trained C2 net's maps drift towards a corner (top-left with
TF-style 'same' padding); C2sp and C3 maps stay centred.

The sample: every finished run whose checkpoint is on the probing machine (measured, and written as a probe record
beside its run record), plus the committed probe records of runs measured elsewhere (``experiments.probe_records``).
One row set per run, one recipe per sample."""
CLAIM = "A trained C2 net's feature maps drift towards a corner; C2sp and C3 maps stay centred."
COLUMNS = ["run", "conv", "seed", "size", "dy", "dx"]


@torch.no_grad()
def stage_maps(model: torch.nn.Module, x: torch.Tensor) -> "OrderedDict[int, torch.Tensor]":
    """Mean |activation| map (H, W) of each stage's output, keyed by its size (``model.forward_stages``)."""
    if not hasattr(model, "forward_stages"):
        raise ConfigError(f"trained_drift needs a model with stage outputs (forward_stages), got {type(model).__name__}")
    return OrderedDict((out.shape[-1], out.abs().mean((0, 1))) for out in model.forward_stages(x))


def measure(images: int, cache: dict):
    """The probe's measurement of one run: one row per stage."""
    def one(state: dict) -> list[dict]:
        cfg, rows = state["config"], []
        for size, m in stage_maps(model_from_state(state).float(), test_images(state, images, cache)).items():
            cy, cx, _ = centroid(m[None, None].double())
            rows.append({"conv": cfg["model"].get("conv", "?"), "seed": cfg["seed"], "size": size,
                         "dy": cy - (size - 1) / 2, "dx": cx - (size - 1) / 2})
        return rows
    return one


def compute(checkpoints: str, images: int, model: str | None, experiment: str | None,
            profile: str | None = None, records: str | None = None) -> list[dict]:
    """The sample's runs (``experiments.probe_records.sample``), each with one row per stage."""
    return sample("trained_drift", measure(images, {}), checkpoints, experiment, model, profile,
                  {"images": images}, records)


def summarise(rows: list[dict]) -> dict:
    """Per conv kind: mean drift of the last (smallest) stage and how many runs drift up-left."""
    metrics = {}
    last_size = min(int(r["size"]) for r in rows)
    for conv in sorted({r["conv"] for r in rows}):
        last = [r for r in rows if r["conv"] == conv and int(r["size"]) == last_size]
        metrics[f"dy_last_stage_{conv}"] = sum(r["dy"] for r in last) / len(last)
        metrics[f"dx_last_stage_{conv}"] = sum(r["dx"] for r in last) / len(last)
        metrics[f"offset_last_stage_{conv}"] = sum((r["dy"] ** 2 + r["dx"] ** 2) ** 0.5 for r in last) / len(last)
        metrics[f"up_left_runs_{conv}"] = sum(r["dy"] < 0 and r["dx"] < 0 for r in last)
        metrics[f"runs_{conv}"] = len(last)
    return metrics


def run(out_dir: str, logger, checkpoints: str = "multirun", images: int = 1000, model: str | None = None,
        experiment: str | None = "even_kernels", profile: str | None = None, records: str | None = None) -> dict:
    """``checkpoints``: a sweep dir (searched recursively), a glob or one ``last.pt``; ``model``: keep only
    this ``model.name`` (a sweep over depths mixes them); ``experiment``: keep only runs of this
    ``experiment_name``; ``profile``: keep only runs of this ``profile_name`` (None: any); ``records``: the run
    records dir, where this probe's per-run records are written and read (``experiments.probe_records``; None:
    only the checkpoints here)."""
    runs = compute(checkpoints, images, model, experiment, profile, records)
    rows = [row for r in runs for row in r["rows"]]
    os.makedirs(out_dir, exist_ok=True)
    write_csv(os.path.join(out_dir, "trained_drift.csv"), COLUMNS, rows)
    plot(rows, os.path.join(out_dir, "trained_drift.png"), ", ".join(sorted({r["model"] for r in runs})))
    metrics = {**summarise(rows), **describe(runs)}
    write_readme(out_dir, "trained_drift: feature-map centroids of trained networks (Wu et al. 2019, E1)",
                 SETUP, metrics, ["trained_drift.csv", "trained_drift.png"], claim=CLAIM)
    log_outputs(logger, out_dir, {"trained_drift": "trained_drift.csv"}, {"trained_drift": "trained_drift.png"})
    return metrics


def plot(rows: list[dict], path: str, models: str) -> None:
    """One panel per stage: each run's centroid offset (dx, dy), coloured by conv kind; the cross is the centre."""
    sizes = sorted({int(r["size"]) for r in rows}, reverse=True)
    convs = sorted({r["conv"] for r in rows})
    colors = dict(zip(convs, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, axes = plt.subplots(1, len(sizes), figsize=(3.2 * len(sizes), 3.4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        for conv in convs:
            pts = [r for r in rows if r["conv"] == conv and int(r["size"]) == size]
            ax.scatter([r["dx"] for r in pts], [r["dy"] for r in pts], s=18, color=colors[conv],
                       label=f"{conv.upper()} (n={len(pts)})")
        lim = max([0.5] + [abs(float(r[k])) * 1.15 for r in rows if int(r["size"]) == size for k in ("dx", "dy")])
        ax.set_xlim(-lim, lim)
        ax.set_ylim(lim, -lim)  # image orientation: up is negative dy
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.6", lw=0.6)
        ax.set_title(f"{size}x{size} stage", fontsize=9)
        ax.set_xlabel("dx (px, - = left)")
        ax.set_ylabel("dy (px, - = up)")
        ax.legend(fontsize=7)
    fig.suptitle(f"Centroid of the mean |activation| map of each stage's last block, trained {models}, one dot per run",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
