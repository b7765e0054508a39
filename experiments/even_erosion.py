"""Probe: "information erosion" Q_n (mean |activation| of layer n) vs depth for C2..C5 kernels.

Paper: Wu et al., "Convolution with even-sized kernels and symmetric padding" (NeurIPS 2019,
arXiv 1903.08385), claim E2 / PAPERS.md 1.2 ("Mean L1-norm value" vs layer 0..54 on a log axis:
at layer 54 C2sp ~0.08 > C3 ~0.05 > C4sp ~0.03 > C5 ~0.013 > C4 ~1.5e-3, C2 < 1e-3 by ~layer 45).

Q_n = (1/(h*w)) ... see ``SETUP`` (also the run README's Setup section).

Outputs: ``erosion.csv`` (kernel, layer, q, size), ``erosion.png`` (log y axis), README.md.
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.nn as nn

from experiments.even_drift import COLORS, set_averaging_weights
from experiments.probe_utils import log_outputs, plt, probe_kinds, write_csv, write_readme
from models.layers import create_conv

# What the probe does, written into its README ("Setup"); the module docstring points here.
SETUP = """\
Q_n = (1/(h*w)) sum_p |F_n(p)|, averaged over channels and images.

Training-free setup (default; deterministic, float64, ``torch.no_grad``):

- A 54-layer stack in the ResNet-56 layout: 18 stride-1 convs at 32x32, 18 at 16x16 and 18 at 8x8,
  each ``models.layers.create_conv(kind, C, C)`` with C = 4 channels, for C2, C2sp, C3, C4, C4sp, C5.
- Downsampling between stages (before layers 19 and 37): ``downsample="avgpool"`` (default) applies
  AvgPool 2x2/2 and then the stride-1 conv of the kind. This is what ``create_conv(kind, stride=2)``
  and the official code do for even kernels, and it treats every kernel alike; AvgPool of a
  non-negative map keeps Q exactly, so the kinks at layers 18/36 come from the convs, whose zero
  padding touches twice the fraction of a half-size map. ``downsample="strided"`` instead uses
  ``create_conv(kind, C, C, stride=2)`` for layers 19 and 37 (odd kernels: strided conv).
- Non-negative averaging weights: every tap = 1 / (C * k * k), bias 0, zero padding (as each kind
  pads), no nonlinearity, no BN. Away from the border each layer keeps the mean, so every loss of Q
  is erosion through the zero padding.
- Input: i.i.d. U[0, 1] noise, ``batch`` = 4 images of C x 32 x 32, seed 0 (Q_0 ~ 0.5).

Trained-network path (``checkpoint=PATH``, a ``checkpoints/last.pt`` written by ``train.py``):
the network is rebuilt with ``engine.checkpoint.load_model`` (eval mode, so BN uses its running
statistics) and fed a fixed U[0, 1] noise batch (``batch`` images, seed 0) of the shape the run
trained on (channels / image size from the checkpoint's data config, else the first conv and 32 px).
Forward hooks record Q after every spatial conv (every ``nn.Conv2d`` with a kernel > 1x1, in
execution order: 1x1 projection shortcuts are skipped) -- rows ``kernel = trained_conv`` -- and the
model's ``forward_blocks`` gives Q after every residual block -- rows ``kernel = trained_block``
(none for models without blocks). Noise rather than the run's data keeps the probe data-free and
comparable with the training-free curves (Q_0 = 0.5); note that the network was trained on
normalised images, so this measures how the trained filters propagate a flat-spectrum input.
"""

# values read off the poster plot at layer 54 (PAPERS.md 1.2), for the figure only
POSTER_Q54 = {"c2sp": 0.08, "c3": 0.05, "c4sp": 0.03, "c5": 0.013, "c4": 1.5e-3}


def erosion_stack(kind: str, channels: int = 4, layers_per_stage: int = 18, stages: int = 3,
                  downsample: str = "avgpool") -> nn.Sequential:
    """The training-free ResNet-56-layout stack: a flat ``nn.Sequential`` of (pool +) conv layers.

    Element ``n-1`` maps the output of layer n-1 to the output of layer n (n = 1..stages*L).
    """
    if downsample not in ("avgpool", "strided"):
        raise ValueError(f"downsample must be 'avgpool' or 'strided', got {downsample!r}")
    layers: list[nn.Module] = []
    for s in range(stages):
        for b in range(layers_per_stage):
            first = s > 0 and b == 0
            if first and downsample == "avgpool":
                layers.append(nn.Sequential(nn.AvgPool2d(2), create_conv(kind, channels, channels, stride=1)))
            else:
                layers.append(create_conv(kind, channels, channels, stride=2 if first else 1))
    stack = nn.Sequential(*layers).to(torch.float64)
    set_averaging_weights(stack)
    return stack.eval()


@torch.no_grad()
def training_free_q(kind: str, channels: int = 4, size: int = 32, batch: int = 4, layers_per_stage: int = 18,
                    stages: int = 3, downsample: str = "avgpool", seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, size, size, generator=g, dtype=torch.float64)
    stack = erosion_stack(kind, channels, layers_per_stage, stages, downsample)
    rows = [{"kernel": kind, "layer": 0, "q": float(x.abs().mean()), "size": size}]
    for n, layer in enumerate(stack, start=1):
        x = layer(x)
        rows.append({"kernel": kind, "layer": n, "q": float(x.abs().mean()), "size": int(x.shape[-1])})
    return rows


def _input_shape_from_checkpoint(path: str, model: nn.Module, batch: int) -> tuple[int, int, int, int]:
    from engine.checkpoint import load_checkpoint

    data = {}
    try:
        data = dict(load_checkpoint(path)["config"].get("data") or {})
    except Exception:  # older/foreign checkpoint layout: fall back to the model
        pass
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    ch = int(data.get("channels") or (first.in_channels if first is not None else 3))
    size = int(data.get("image_size") or 32)
    return batch, ch, size, size


@torch.no_grad()
def trained_q(model: nn.Module, input_shape, seed: int = 0, label: str = "trained",
              x: torch.Tensor | None = None) -> list[dict]:
    """Q after every spatial conv and every residual block of ``model`` (eval mode) on ``x``, else on
    U[0,1] noise of ``input_shape``."""
    model = model.eval()
    p = next(model.parameters())
    if x is None:
        x = torch.rand(*input_shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    x = x.to(device=p.device, dtype=p.dtype)
    recs: dict[str, list] = {"conv": [], "block": []}
    hooks = []

    def record(kind):
        def hook(mod, inp, out):
            out = out[0] if isinstance(out, (tuple, list)) else out
            recs[kind].append((float(out.abs().mean()), int(out.shape[-1])))
        return hook

    for m in model.modules():
        if isinstance(m, nn.Conv2d) and max(m.kernel_size) > 1:
            hooks.append(m.register_forward_hook(record("conv")))
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    if hasattr(model, "forward_blocks"):
        recs["block"] = [(float(out.abs().mean()), int(out.shape[-1])) for out in model.forward_blocks(x)]
    q0 = float(x.abs().mean())
    rows = []
    for kind, rec in recs.items():
        if not rec:  # e.g. no forward_blocks: no block curve (not a curve of the input alone)
            continue
        rows.append({"kernel": f"{label}_{kind}", "layer": 0, "q": q0, "size": int(x.shape[-1])})
        rows += [{"kernel": f"{label}_{kind}", "layer": i, "q": q, "size": s} for i, (q, s) in enumerate(rec, start=1)]
    return rows


@torch.no_grad()
def compute(kinds: tuple, channels: int, size: int, batch: int, layers_per_stage: int, stages: int,
            downsample: str, seed: int, checkpoint: Optional[str]) -> tuple[list[dict], list[dict]]:
    """Training-free rows per kind, and the rows of the checkpoint's network (empty without one)."""
    rows = []
    for kind in kinds:
        rows += training_free_q(kind, channels, size, batch, layers_per_stage, stages, downsample, seed)
    if not checkpoint:
        return rows, []
    from engine.checkpoint import load_model

    model = load_model(checkpoint)
    return rows, trained_q(model, _input_shape_from_checkpoint(checkpoint, model, batch), seed=seed)


def plot(rows: list[dict], trained_rows: list[dict], kinds: tuple, layers_per_stage: int, stages: int,
         setup: str, path: str) -> None:
    """erosion.png: Q_n vs layer (log y), the poster's layer-54 values as crosses."""
    n_layers = layers_per_stage * stages
    fig, ax = plt.subplots(figsize=(8, 5))
    for kind in kinds:
        rs = [r for r in rows if r["kernel"] == kind]
        ax.plot([r["layer"] for r in rs], [r["q"] for r in rs], "-", color=COLORS.get(kind), lw=1.8,
                label=f"{kind.upper()} (Q_{n_layers} = {rs[-1]['q']:.2g})")
        if kind in POSTER_Q54 and n_layers == 54:
            ax.plot([54], [POSTER_Q54[kind]], "x", color=COLORS.get(kind), ms=7, mew=2)
    for kind in sorted({r["kernel"] for r in trained_rows}):
        rs = [r for r in trained_rows if r["kernel"] == kind]
        ax.plot([r["layer"] for r in rs], [r["q"] for r in rs], "--", lw=1.2, label=f"{kind} (checkpoint)")
    for s in range(1, stages):
        ax.axvline(s * layers_per_stage, color="gray", lw=0.6, ls=":")
    if n_layers == 54:
        ax.plot([], [], "x", color="gray", label="poster values at layer 54")
    ax.set_yscale("log")
    ax.set_xlabel("layer index n")
    ax.set_ylabel("Q_n = mean |activation|  (log)")
    ax.set_title("Information erosion (Wu et al. 2019, E2)\n" + setup, fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarise(rows: list[dict], trained_rows: list[dict], kinds: tuple, n_layers: int) -> dict:
    """Q at the last layer (and at 18) per kind, Q_0, and the last Q and depth of each trained curve."""
    metrics: dict = {}
    for kind in kinds:
        rs = [r for r in rows if r["kernel"] == kind]
        metrics[f"q_last_{kind}"] = rs[-1]["q"]
        if n_layers >= 18:
            metrics[f"q_18_{kind}"] = rs[18]["q"]
    metrics["q_0"] = rows[0]["q"]
    for kind in sorted({r["kernel"] for r in trained_rows}):
        rs = [r for r in trained_rows if r["kernel"] == kind]
        metrics[f"q_last_{kind}"] = rs[-1]["q"]
        metrics[f"n_layers_{kind}"] = rs[-1]["layer"]
    return metrics


def run(out_dir: str, logger, kinds: tuple | None = None, channels: int = 4, size: int = 32, batch: int = 4,
        layers_per_stage: int = 18, stages: int = 3, downsample: str = "avgpool", seed: int = 0,
        checkpoint: Optional[str] = None) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    kinds = probe_kinds(kinds)
    n_layers = layers_per_stage * stages
    rows, trained_rows = compute(kinds, channels, size, batch, layers_per_stage, stages, downsample, seed, checkpoint)
    write_csv(os.path.join(out_dir, "erosion.csv"), ["kernel", "layer", "q", "size"], rows + trained_rows)
    sizes = [size // 2**s for s in range(stages)]
    setup = (f"training-free: {n_layers} convs ({stages} x {layers_per_stage} at {'/'.join(map(str, sizes))} px, "
             f"{'AvgPool 2x2' if downsample == 'avgpool' else 'strided-conv'} downsampling), {channels} ch,\n"
             f"averaging weights 1/(C*k*k), zero padding, no nonlinearity/BN; U[0,1] input, {batch} images, "
             f"seed {seed}, float64")
    plot(rows, trained_rows, kinds, layers_per_stage, stages, setup, os.path.join(out_dir, "erosion.png"))
    metrics = summarise(rows, trained_rows, kinds, n_layers)
    log_outputs(logger, out_dir, tables={"erosion": "erosion.csv"}, images={"erosion": "erosion.png"})
    write_readme(
        out_dir, "even_erosion: information erosion Q_n vs depth (Wu et al. 2019, E2)",
        SETUP + f"\nThis run: {setup.replace(chr(10), ' ')}; checkpoint = {checkpoint}.", metrics,
        ["erosion.csv", "erosion.png", "metrics.json"],
        claim="Zero padding erodes information (Q_n < Q_{n-1}); asymmetric padding makes the erosion faster, "
              "so C2 and C4 decay much faster with depth than C3, C5, C2sp and C4sp.")
    return metrics
