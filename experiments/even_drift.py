"""Probe: even kernels with 'same' padding shift features 0.5 px per layer; symmetric padding does not.

Paper: Wu et al., "Convolution with even-sized kernels and symmetric padding" (NeurIPS 2019,
arXiv 1903.08385), claim E1 / PAPERS.md 1.5(a); figure in the spirit of seed document 000
(rows C2 vs C2sp, feature maps after n layers).

Setup (training-free, deterministic, float64, ``torch.no_grad``): see ``SETUP`` (also the run README's Setup section).

Outputs: ``drift.csv`` (kernel, depth, dy, dx, drift, mass), ``drift.png`` (signed drift and drift
magnitude vs depth), ``feature_maps.png`` (C2 vs C2sp after n = 0, 4, 8, 16, 24 layers, crosshair
at the map centre, dot at the centroid), README.md.
"""
from __future__ import annotations

import math
import os

import torch
import torch.nn as nn

from experiments.probe_utils import log_outputs, plt, probe_kinds, write_csv, write_readme
from models.layers import create_conv

# What the probe does, written into its README ("Setup"); the module docstring points here.
SETUP = """\


- For each kind in C2, C2sp, C3, C4, C4sp, C5 a stack of ``depth`` (default 24) stride-1 convs
  ``models.layers.create_conv(kind, C, C)`` with C = 4 channels (SymPad needs C % 4 == 0).
  C2/C4 are ``SamePadConv2d`` (TF 'same': the extra pad pixel on the right/bottom), C2sp/C4sp are
  ``SymPadConv2d``, C3/C5 are ``nn.Conv2d(padding=k//2)``.
- Non-negative averaging weights: every tap = 1 / (C * k * k), bias 0, no nonlinearity, no BN.
  Each layer therefore conserves mass away from the border and is a pure low-pass + shift.
- Input: a centred isotropic Gaussian blob (sigma = 3 px) on an 80x80 map, identical in all C
  channels; its centre (39.5, 39.5) is the map centre, so the input centroid is exactly central.
  After 24 layers the blob's sigma is <= 7.5 px (C5) and the C4 drift is 12 px, so the blob stays
  >= 4 sigma away from the zero-padded border (64x64 was not enough for C4 at n=24: 0.13 % of the
  mass was lost there); the ``mass`` column reports the retained fraction (1 - mass < 1e-4).
- Centroid = intensity-weighted mean (y, x) position of the channel-mean map of one image;
  drift (dy, dx) = centroid after n layers - input centroid, in pixels (negative = up / left).

Expected: C2 and C4 drift by -n/2 px in y and x (towards the top-left: output i of a k=2 'same'
conv sees inputs i and i+1, so content moves by half a pixel per layer); C2sp, C4sp, C3, C5 stay at 0.
"""

COLORS = {"c2": "tab:red", "c2sp": "tab:blue", "c3": "black", "c4": "tab:orange", "c4sp": "tab:cyan",
          "c5": "tab:gray"}


def averaging_stack(kind: str, depth: int, channels: int) -> nn.Sequential:
    """``depth`` stride-1 convs of ``kind`` with all taps 1/(C_in*k*k) and zero bias, float64."""
    layers = [create_conv(kind, channels, channels, stride=1, bias=False) for _ in range(depth)]
    stack = nn.Sequential(*layers).to(torch.float64)
    set_averaging_weights(stack)
    return stack.eval()


@torch.no_grad()
def set_averaging_weights(model: nn.Module) -> None:
    """Fill every conv weight with 1/fan_in (an averaging filter) and zero every conv bias."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Conv1d)):
            m.weight.fill_(1.0 / m.weight[0].numel())
            if m.bias is not None:
                m.bias.zero_()


def gaussian_blob(size: int, sigma: float, channels: int) -> torch.Tensor:
    """[1, C, size, size] float64 isotropic Gaussian centred at ((size-1)/2, (size-1)/2)."""
    c = (size - 1) / 2
    r = torch.arange(size, dtype=torch.float64) - c
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g.expand(1, channels, size, size).clone()


def centroid(x: torch.Tensor) -> tuple[float, float, float]:
    """(cy, cx, mass) of the channel-mean map of ``x[0]`` (intensity-weighted mean position)."""
    m = x[0].mean(0)
    h, w = m.shape
    mass = m.sum()
    cy = (m.sum(1) * torch.arange(h, dtype=m.dtype)).sum() / mass
    cx = (m.sum(0) * torch.arange(w, dtype=m.dtype)).sum() / mass
    return float(cy), float(cx), float(mass)


@torch.no_grad()
def compute(kinds: tuple, depth: int, channels: int, size: int, sigma: float,
            snapshot_depths: tuple) -> tuple[list[dict], dict]:
    """Rows (kernel, depth, dy, dx, drift, mass) and the channel-mean maps at ``snapshot_depths``."""
    x0 = gaussian_blob(size, sigma, channels)
    cy0, cx0, m0 = centroid(x0)
    rows, snaps = [], {}
    for kind in kinds:
        stack = averaging_stack(kind, depth, channels)
        x = x0
        for n in range(depth + 1):
            if n > 0:
                x = stack[n - 1](x)
            cy, cx, m = centroid(x)
            dy, dx = cy - cy0, cx - cx0
            rows.append({"kernel": kind, "depth": n, "dy": dy, "dx": dx, "drift": math.hypot(dy, dx),
                         "mass": m / m0})
            if n in snapshot_depths:
                snaps[(kind, n)] = x[0].mean(0).clone()
    return rows, snaps


def plot_drift(rows: list[dict], kinds: tuple, depth: int, setup: str, path: str) -> None:
    """drift.png: signed per-axis drift and magnitude vs depth."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    ns = list(range(depth + 1))
    for kind in kinds:
        rs = [r for r in rows if r["kernel"] == kind]
        c = COLORS.get(kind)
        axes[0].plot(ns, [r["dy"] for r in rs], "-", color=c, label=f"{kind.upper()} dy")
        axes[0].plot(ns, [r["dx"] for r in rs], ":", color=c, lw=2.5, label=f"{kind.upper()} dx")
        axes[1].plot(ns, [r["drift"] for r in rs], "o-", ms=3, color=c, label=kind.upper())
    axes[0].plot(ns, [-n / 2 for n in ns], "--", color="gray", lw=0.8, label="-n/2")
    axes[1].plot(ns, [n / math.sqrt(2) for n in ns], "--", color="gray", lw=0.8, label="n/sqrt(2) = |(-n/2, -n/2)|")
    last = {r["kernel"]: r for r in rows if r["depth"] == depth}
    on_half = [k.upper() for k in kinds if abs(last[k]["dy"] + depth / 2) < 0.1 and abs(last[k]["dx"] + depth / 2) < 0.1]
    on_zero = [k.upper() for k in kinds if abs(last[k]["dy"]) < 0.1 and abs(last[k]["dx"]) < 0.1]
    axes[0].set_title(f"on -n/2: {', '.join(on_half) or '-'};  at 0: {', '.join(on_zero) or '-'}", fontsize=8)
    axes[0].set_ylabel("centroid drift [px] (negative = up / left)")
    axes[1].set_ylabel("drift magnitude |(dy, dx)| [px]")
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("number of conv layers n")
        ax.grid(alpha=0.3)
    fig.suptitle("Feature-centroid drift vs depth (Wu et al. 2019, E1)\n" + setup, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_feature_maps(rows: list[dict], snaps: dict, kinds: tuple, size: int, setup: str, path: str) -> None:
    """feature_maps.png: each kind's map after n layers (seed 000 style: C2 vs C2sp)."""
    depths = sorted({n for _, n in snaps})
    fig, axes = plt.subplots(len(kinds), len(depths), figsize=(2.3 * len(depths), 2.5 * len(kinds) + 0.6), squeeze=False)
    c = (size - 1) / 2
    for i, kind in enumerate(kinds):
        for j, n in enumerate(depths):
            ax = axes[i][j]
            ax.imshow(snaps[(kind, n)].numpy(), cmap="viridis", interpolation="nearest")
            ax.axhline(c, color="white", lw=0.7)
            ax.axvline(c, color="white", lw=0.7)
            r = next(r for r in rows if r["kernel"] == kind and r["depth"] == n)
            ax.plot([c + r["dx"]], [c + r["dy"]], "r.", ms=6)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"n={n}: dy={r['dy']:+.2f}, dx={r['dx']:+.2f}", fontsize=7)
            if j == 0:
                ax.set_ylabel(kind.upper(), fontsize=11)
    fig.suptitle("Channel-mean feature map after n layers; crosshair = map centre, red dot = centroid\n"
                 + setup, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarise(rows: list[dict], kinds: tuple, depth: int) -> dict:
    """Drift at n = 8, 16 and ``depth`` per kind (dy/dx at 16), and the mass kept at ``depth``."""
    at = {(r["kernel"], r["depth"]): r for r in rows}
    metrics: dict = {}
    for kind in kinds:
        for n in sorted({8, 16, depth}):
            if n > depth:
                continue
            metrics[f"drift_{kind}_at_{n}"] = at[(kind, n)]["drift"]
            if n == 16:
                metrics[f"dy_{kind}_at_{n}"] = at[(kind, n)]["dy"]
                metrics[f"dx_{kind}_at_{n}"] = at[(kind, n)]["dx"]
        metrics[f"mass_{kind}_at_{depth}"] = at[(kind, depth)]["mass"]
    return metrics


def run(out_dir: str, logger, depth: int = 24, channels: int = 4, size: int = 80, sigma: float = 3.0,
        kinds: tuple | None = None, snapshot_depths: tuple = (0, 4, 8, 16, 24)) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    kinds = probe_kinds(kinds)
    snapshot_depths = tuple(int(n) for n in snapshot_depths if n <= depth)
    setup = (f"{channels} channels, averaging weights 1/(C*k*k), bias 0, no nonlinearity; "
             f"Gaussian blob sigma={sigma:g} px centred on a {size}x{size} map; float64")
    rows, snaps = compute(kinds, depth, channels, size, sigma, snapshot_depths)
    write_csv(os.path.join(out_dir, "drift.csv"), ["kernel", "depth", "dy", "dx", "drift", "mass"], rows)
    plot_drift(rows, kinds, depth, setup, os.path.join(out_dir, "drift.png"))
    images = {"drift": "drift.png"}
    fig_kinds = tuple(k for k in ("c2", "c2sp") if k in kinds)
    if fig_kinds and snapshot_depths:
        plot_feature_maps(rows, snaps, fig_kinds, size, setup, os.path.join(out_dir, "feature_maps.png"))
        images["feature_maps"] = "feature_maps.png"
    metrics = summarise(rows, kinds, depth)
    log_outputs(logger, out_dir, tables={"drift": "drift.csv"}, images=images)
    write_readme(
        out_dir, "even_drift: feature-centroid drift of even kernels (Wu et al. 2019, E1)", SETUP,
        metrics, ["drift.csv", *images.values(), "metrics.json"],
        claim="An even kernel with 'same' padding shifts features 0.5 px per layer (n/2 px after n "
              "layers) towards the top-left; symmetric padding (C2sp) keeps them centred.")
    return metrics
