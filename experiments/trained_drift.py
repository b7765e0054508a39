"""Probe: where do a *trained* network's features sit? (Wu et al., NeurIPS 2019, E1 / PAPERS.md 1.5c)

For each checkpoint (a ``checkpoints/last.pt`` of a CIFAR ResNet run), the mean |activation| map
of the last block of every stage (32x32, 16x16, 8x8) is averaged over the first ``images`` test
images of the run's own dataset (normalised as in training, eval mode). Its intensity-weighted
centroid minus the map centre is the drift, in pixels of that stage (negative = up / left). The
claim: a trained C2 net's maps drift towards a corner (top-left with TF-style 'same' padding);
C2sp and C3 maps stay centred.

Outputs: ``trained_drift.csv`` (run, conv, seed, stage, size, dy, dx), ``trained_drift.png``.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from glob import glob

import torch
from hydra.utils import instantiate

from engine.checkpoint import load_checkpoint, model_from_state
from engine.inference import Batches
from experiments.even_drift import centroid
from experiments.probe_utils import log_outputs, plt, write_csv, write_readme


@torch.no_grad()
def stage_maps(model: torch.nn.Module, x: torch.Tensor) -> "OrderedDict[int, torch.Tensor]":
    """Mean |activation| map (H, W) of the last residual block at each spatial size."""
    maps: "OrderedDict[int, torch.Tensor]" = OrderedDict()
    hooks = [m.register_forward_hook(lambda mod, inp, out: maps.__setitem__(out.shape[-1], out.abs().mean((0, 1))))
             for name, m in model.named_modules() if name.startswith("layers.") and name.count(".") == 1]
    model(x)
    for h in hooks:
        h.remove()
    return maps


def run(out_dir: str, logger, checkpoints: str = "multirun/even_kernels-quick/*/checkpoints/last.pt",
        images: int = 1000, model: str | None = None) -> dict:
    """``model``: keep only the checkpoints of this ``model.name`` (a sweep over depths mixes them)."""
    paths = sorted(glob(checkpoints))
    if not paths:
        raise FileNotFoundError(f"probe.checkpoints={checkpoints!r} matches no checkpoint; train first, e.g. "
                                "python train.py -m experiment=even_kernels profile=quick")
    rows, panels, found, test_x = [], {}, set(), {}
    for path in paths:
        state = load_checkpoint(path)
        cfg = state["config"]
        found.add(cfg["model"]["name"])
        if model is not None and cfg["model"]["name"] != model:
            continue
        net = model_from_state(state).float()
        source = repr(cfg["data"]["source"])  # load each dataset once, not once per checkpoint
        if source not in test_x:
            test_x[source] = instantiate(cfg["data"]["source"]).test_x[:images]
        prep = Batches(state["mean"], state["std"], torch.device("cpu"), False)
        maps = stage_maps(net, prep(test_x[source]))
        conv = cfg["model"].get("conv", "?")
        for size, m in maps.items():
            cy, cx, _ = centroid(m[None, None].double())
            rows.append({"run": os.path.dirname(os.path.dirname(path)), "conv": conv, "seed": cfg["seed"],
                         "size": size, "dy": cy - (size - 1) / 2, "dx": cx - (size - 1) / 2})
            panels.setdefault(conv, {}).setdefault(size, m)
    if model is not None and not rows:
        raise ValueError(f"probe.model={model!r}: none of the {len(paths)} checkpoints matching "
                         f"{checkpoints!r} is one (they are {', '.join(sorted(found))})")
    names = [model] if model is not None else sorted(found)
    write_csv(os.path.join(out_dir, "trained_drift.csv"), ["run", "conv", "seed", "size", "dy", "dx"], rows)
    _plot(panels, os.path.join(out_dir, "trained_drift.png"), ", ".join(names))
    metrics = {}
    for conv in sorted({r["conv"] for r in rows}):
        last = [r for r in rows if r["conv"] == conv and r["size"] == min(s for s in panels[conv])]
        metrics[f"dy_last_stage_{conv}"] = sum(r["dy"] for r in last) / len(last)
        metrics[f"dx_last_stage_{conv}"] = sum(r["dx"] for r in last) / len(last)
        metrics[f"offset_last_stage_{conv}"] = sum((r["dy"] ** 2 + r["dx"] ** 2) ** 0.5 for r in last) / len(last)
        metrics[f"up_left_runs_{conv}"] = sum(r["dy"] < 0 and r["dx"] < 0 for r in last)
        metrics[f"runs_{conv}"] = len(last)
    metrics["n_checkpoints"] = len({r["run"] for r in rows})
    write_readme(out_dir, "trained_drift: feature-map centroids of trained networks (Wu et al. 2019, E1)",
                 __doc__.split("\n\n", 1)[1], metrics, ["trained_drift.csv", "trained_drift.png"])
    log_outputs(logger, out_dir, {"trained_drift": "trained_drift.csv"}, {"trained_drift": "trained_drift.png"})
    return metrics


def _plot(panels: dict, path: str, models: str) -> None:
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
