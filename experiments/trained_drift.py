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
from experiments.trained_nets import profiles_of, select_runs, test_images

SETUP = """\
For each checkpoint (a ``checkpoints/last.pt`` of a CIFAR ResNet run), the mean |activation| map
of the last block of every stage (32x32, 16x16, 8x8; the model's ``forward_stages``) is averaged
over the first ``images`` test images of the run's own dataset (normalised as in training, eval
mode). Its intensity-weighted centroid minus the map centre is the drift, in pixels of that stage
(negative = up / left). The claim: a trained C2 net's maps drift towards a corner (top-left with
TF-style 'same' padding); C2sp and C3 maps stay centred."""
CLAIM = "A trained C2 net's feature maps drift towards a corner; C2sp and C3 maps stay centred."
COLUMNS = ["run", "conv", "seed", "size", "dy", "dx"]


@torch.no_grad()
def stage_maps(model: torch.nn.Module, x: torch.Tensor) -> "OrderedDict[int, torch.Tensor]":
    """Mean |activation| map (H, W) of each stage's output, keyed by its size (``model.forward_stages``)."""
    if not hasattr(model, "forward_stages"):
        raise ConfigError(f"trained_drift needs a model with stage outputs (forward_stages), got {type(model).__name__}")
    return OrderedDict((out.shape[-1], out.abs().mean((0, 1))) for out in model.forward_stages(x))


def compute(checkpoints: str, images: int, model: str | None, experiment: str | None,
            profile: str | None = None) -> tuple[list[dict], dict, list, list]:
    """Rows (one per run and stage), one map per (conv, size) of the first run (for the figure), model names,
    profiles of the runs."""
    runs, names = select_runs(checkpoints, experiment, model, profile)
    rows, panels, cache = [], {}, {}
    for path, state in runs:
        cfg = state["config"]
        net = model_from_state(state).float()
        conv = cfg["model"].get("conv", "?")
        for size, m in stage_maps(net, test_images(state, images, cache)).items():
            cy, cx, _ = centroid(m[None, None].double())
            rows.append({"run": os.path.dirname(os.path.dirname(path)), "conv": conv, "seed": cfg["seed"],
                         "size": size, "dy": cy - (size - 1) / 2, "dx": cx - (size - 1) / 2})
            panels.setdefault(conv, {}).setdefault(size, m)
    return rows, panels, names, profiles_of(runs)


def summarise(rows: list[dict], panels: dict) -> dict:
    """Per conv kind: mean drift of the last (smallest) stage and how many runs drift up-left."""
    metrics = {}
    for conv in sorted({r["conv"] for r in rows}):
        last = [r for r in rows if r["conv"] == conv and r["size"] == min(s for s in panels[conv])]
        metrics[f"dy_last_stage_{conv}"] = sum(r["dy"] for r in last) / len(last)
        metrics[f"dx_last_stage_{conv}"] = sum(r["dx"] for r in last) / len(last)
        metrics[f"offset_last_stage_{conv}"] = sum((r["dy"] ** 2 + r["dx"] ** 2) ** 0.5 for r in last) / len(last)
        metrics[f"up_left_runs_{conv}"] = sum(r["dy"] < 0 and r["dx"] < 0 for r in last)
        metrics[f"runs_{conv}"] = len(last)
    metrics["n_checkpoints"] = len({r["run"] for r in rows})
    return metrics


def run(out_dir: str, logger, checkpoints: str = "multirun", images: int = 1000, model: str | None = None,
        experiment: str | None = "even_kernels", profile: str | None = None) -> dict:
    """``checkpoints``: a sweep dir (searched recursively), a glob or one ``last.pt``; ``model``: keep only
    this ``model.name`` (a sweep over depths mixes them); ``experiment``: keep only runs of this
    ``experiment_name``; ``profile``: keep only runs of this ``profile_name`` (None: any)."""
    rows, panels, names, profiles = compute(checkpoints, images, model, experiment, profile)
    write_csv(os.path.join(out_dir, "trained_drift.csv"), COLUMNS, rows)
    plot(panels, os.path.join(out_dir, "trained_drift.png"), ", ".join(names))
    metrics = {**summarise(rows, panels), "profile": ", ".join(profiles)}
    write_readme(out_dir, "trained_drift: feature-map centroids of trained networks (Wu et al. 2019, E1)",
                 SETUP, metrics, ["trained_drift.csv", "trained_drift.png"], claim=CLAIM)
    log_outputs(logger, out_dir, {"trained_drift": "trained_drift.csv"}, {"trained_drift": "trained_drift.png"})
    return metrics


def plot(panels: dict, path: str, models: str) -> None:
    convs = sorted(panels)
    sizes = sorted({s for p in panels.values() for s in p}, reverse=True)
    fig, axes = plt.subplots(len(convs), len(sizes), figsize=(2.6 * len(sizes), 2.6 * len(convs)), squeeze=False)
    for i, conv in enumerate(convs):
        for j, size in enumerate(sizes):
            ax = axes[i][j]
            m = panels[conv].get(size)
            if m is not None:
                ax.imshow(m.numpy(), cmap="viridis")
                cy, cx, _ = centroid(m[None, None].double())
                ax.plot([cx], [cy], "r.", ms=8)
                ax.axhline((size - 1) / 2, color="w", lw=0.6)
                ax.axvline((size - 1) / 2, color="w", lw=0.6)
                ax.set_title(f"{conv.upper()} {size}x{size}: dy={cy - (size - 1) / 2:+.2f} dx={cx - (size - 1) / 2:+.2f}",
                             fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"Mean |activation| of the last block per stage, trained {models} (first seed); red = centroid",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
