"""The trained claims' figures (matplotlib, Agg): one function per figure, each returns the file name."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SHORT = {"kernel_size": "K"}  # legend names of the swept knobs


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def _err(v: float) -> float:
    return 0 if math.isnan(v) else v


def err_vs_params(table: list[dict], kinds: tuple[str, ...], path: Path, title: str) -> str:
    """Test error against params (log axis), one line per conv kind, the depth next to each point."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for conv in kinds:
        pts = sorted((r["params"], r["test_err_mean"], r["test_err_std"], r["model"]) for r in table if r["conv"] == conv)
        if pts:
            x, y, e, names = zip(*pts)
            ax.errorbar([v / 1e6 for v in x], y, yerr=[_err(v) for v in e], marker="o", capsize=3, label=conv.upper())
            for xi, yi, name in zip(x, y, names):
                ax.annotate("".join(c for c in name if c.isdigit()), (xi / 1e6, yi), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("params (M)")
    ax.set_ylabel("test error (%)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def blurpool_curves(table: list[dict], path: Path, title: str) -> str:
    """Consistency and accuracy against filter size, one line per (model, augmentation)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for m, aug in sorted({(r["model"], r["augment"]) for r in table}, key=str):
        pts = sorted(((r["filt_size"], r) for r in table if r["model"] == m and r["augment"] == aug), key=lambda p: p[0])
        for ax, metric in zip(axes, ("consistency_circular", "test_acc")):
            ax.errorbar([p[0] for p in pts], [p[1][f"{metric}_mean"] for p in pts],
                        yerr=[_err(p[1][f"{metric}_std"]) for p in pts], linestyle="-" if aug else "--",
                        marker="o", capsize=3, label=f"{m} aug={aug}")
    for ax, label in zip(axes, ("consistency, circular shifts ≤4 px (%)", "test accuracy (%)")):
        ax.set_xlabel("BlurPool filter size (1 = no blur)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def diagonal_stability(rows: list[dict], path: Path, title: str) -> str:
    """p(correct) against the diagonal circular shift, from each record's ``diagonal_stability.csv``."""
    curves: dict[tuple, list[list[float]]] = defaultdict(list)
    for r in rows:
        table = r.get("artifacts", {}).get("diagonal_stability.csv")
        if table:
            curves[(r["model"], r["augment"], r["filt_size"])].append([float(t["p_correct"]) for t in table])
    models = sorted({k[0] for k in curves}) or ["(no runs with a diagonal curve)"]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for (m, aug, filt), cs in sorted(curves.items(), key=lambda kv: str(kv[0])):
            if m == model:
                mean = [sum(c[i] for c in cs) / len(cs) for i in range(len(cs[0]))]
                ax.plot(range(len(mean)), mean, linestyle="-" if aug else "--", marker=".", label=f"f={filt} aug={aug}")
        ax.set_xlabel("diagonal circular shift (px)")
        ax.set_ylabel("p(correct class)")
        ax.set_title(f"{model}: {title}")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def acc_vs_cost(table: list[dict], knob: str, cost: str, path: Path, title: str) -> str:
    """Test accuracy against a cost (MACs), one point per (model, knob value)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in table:
        label = r["model"] + (f" {SHORT.get(knob, knob)}={r[knob]}" if r.get(knob) is not None else "")
        ax.errorbar(r[cost] / 1e6, r["test_acc_mean"], yerr=_err(r["test_acc_std"]), marker="o", capsize=3, label=label)
    ax.set_xlabel(f"{cost.upper()} (M)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
