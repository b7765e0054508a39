"""Probe: an atrous 3x3 filter degenerates to a 1x1 filter as the rate approaches the map size.

Paper: Chen et al., DeepLabv3, "Rethinking Atrous Convolution for Semantic Image Segmentation"
(arXiv 1706.05587), Fig. 4; reference code: seed document 004 (quarryman.cn/article/20210723).

Setup (training-free, exact): see ``SETUP`` (also the run README's Setup section).

Outputs: ``valid_weights.csv`` (rate, frac_1, frac_2, frac_3, frac_4, frac_6, frac_9),
``valid_weights.png``, ``dilation_mae.csv`` (rate, mae, rel_mae), ``dilation_mae.png``, README.md.
"""
from __future__ import annotations

import os
from collections import Counter

import torch
import torch.nn.functional as F

from experiments.probe_utils import log_outputs, plt, write_csv, write_readme

# What the probe does, written into its README ("Setup"); the module docstring points here.
SETUP = """\


(a) Valid-weight counts (DeepLabv3 Fig. 4). A 3x3 filter with atrous rate r and padding r
    (output size = input size) on a 65x65 map, rates 1..66. For each output position we count the
    *valid* taps, i.e. those that land on the map rather than in the zero padding. As in seed 004
    the count is read off a real padded convolution: ``conv2d(ones(65x65), ones(3x3), dilation=r,
    padding=r)`` gives, at each position, the number of valid taps (float64, so exact). It is
    cross-checked inside ``run`` by exact combinatorial counting: per axis a position ``i`` has
    ``#{t in (-1,0,1): 0 <= i + t*r < N}`` valid taps (1, 2 or 3) and the 2-D count is the product
    of the two axes' counts; the two histograms must be identical (an ``AssertionError`` otherwise).
    Possible counts are 1, 2, 3, 4, 6 and 9; ``frac_k`` is the fraction of the N*N positions with
    exactly k valid weights.
(b) Seed 004's second plot: the mean absolute error between a dilated 3x3 conv (padding = rate) and
    the 1x1 conv made of its centre tap, on 16x16 maps, rates 1..17, random N(0,1) weights
    [4, 8, 3, 3] and inputs [2, 8, 16, 16] with a fixed seed, float64. For rate >= 16 every off-centre
    tap falls in the padding, so the MAE is exactly 0.
"""

COUNTS = (1, 2, 3, 4, 6, 9)  # products of per-axis valid-tap counts in {1, 2, 3}


def valid_weight_hist_conv(size: int, rate: int, kernel_size: int = 3) -> Counter:
    """Histogram {valid taps: positions} from a real padded dilated conv of an all-ones map (seed 004)."""
    x = torch.ones(1, 1, size, size, dtype=torch.float64)
    w = torch.ones(1, 1, kernel_size, kernel_size, dtype=torch.float64)
    pad = rate * (kernel_size - 1) // 2
    y = F.conv2d(x, w, padding=pad, dilation=rate)
    assert y.shape[-2:] == (size, size), y.shape
    vals, cnt = torch.unique(y.round().to(torch.int64), return_counts=True)
    assert torch.equal(y, y.round()), "valid-tap counts must be integers"
    return Counter({int(v): int(c) for v, c in zip(vals, cnt)})


def valid_weight_hist_exact(size: int, rate: int, kernel_size: int = 3) -> Counter:
    """The same histogram by exact counting: per-axis valid taps, 2-D count = product."""
    half = (kernel_size - 1) // 2
    per_axis = Counter(
        sum(1 for t in range(-half, half + 1) if 0 <= i + t * rate < size) for i in range(size)
    )
    hist: Counter = Counter()
    for a, na in per_axis.items():
        for b, nb in per_axis.items():
            hist[a * b] += na * nb
    return hist


def dilation_mae(size: int = 16, rates=range(1, 18), seed: int = 0, batch: int = 2, in_ch: int = 8,
                 out_ch: int = 4) -> list[dict]:
    """Seed 004's MAE between a dilated 3x3 conv and its centre-tap 1x1 conv, per rate."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_ch, size, size, generator=g, dtype=torch.float64)
    w = torch.randn(out_ch, in_ch, 3, 3, generator=g, dtype=torch.float64)
    y1 = F.conv2d(x, w[:, :, 1:2, 1:2])
    scale = float(y1.abs().mean())
    rows = []
    for r in rates:
        y = F.conv2d(x, w, padding=r, dilation=r)
        mae = float((y - y1).abs().mean())
        rows.append({"rate": int(r), "mae": mae, "rel_mae": mae / scale})
    return rows


def _first_from(rows: list[dict], key: str, pred) -> int:
    """Smallest rate from which ``pred(row[key])`` holds for every larger rate in ``rows`` (-1: never)."""
    out = -1
    for r in reversed(rows):
        if not pred(r[key]):
            break
        out = r["rate"]
    return out


def valid_weight_rows(size: int, max_rate: int, kernel_size: int) -> list[dict]:
    """Fraction of positions with each count of valid taps, per rate; conv counts cross-checked exactly."""
    rows = []
    n_pos = size * size
    for r in range(1, max_rate + 1):
        h_conv = valid_weight_hist_conv(size, r, kernel_size)
        h_exact = valid_weight_hist_exact(size, r, kernel_size)
        if h_conv != h_exact or sum(h_conv.values()) != n_pos:
            raise RuntimeError(f"rate {r}: conv counts {dict(h_conv)} != exact counts {dict(h_exact)}")
        rows.append({"rate": r, **{f"frac_{k}": h_conv.get(k, 0) / n_pos for k in COUNTS}})
    return rows


def plot_valid_weights(rows: list[dict], size: int, max_rate: int, path: str) -> None:
    """valid_weights.png: DeepLabv3 Fig. 4, with the rates where 9 taps vanish and 1 tap remains."""
    rate9 = _first_from(rows, "frac_9", lambda v: v == 0)
    rate1 = _first_from(rows, "frac_1", lambda v: v == 1)
    rates = [r["rate"] for r in rows]
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    styles = {1: ("tab:red", "-"), 4: ("tab:green", "-"), 9: ("tab:blue", "-"),
              2: ("tab:orange", ":"), 3: ("tab:purple", ":"), 6: ("tab:brown", ":")}
    for k in (1, 4, 9, 2, 3, 6):
        c, ls = styles[k]
        ax.plot(rates, [r[f"frac_{k}"] for r in rows], color=c, ls=ls, lw=2 if k in (1, 4, 9) else 1.2,
                label=f"{k} valid weight{'s' if k > 1 else ''}")
    ax.axvline(rate9, color="tab:blue", lw=0.8, ls="--")
    ax.axvline(rate1, color="tab:red", lw=0.8, ls="--")
    ax.text(rate9, 0.55, f" frac_9 = 0\n for rate >= {rate9}", color="tab:blue", fontsize=8)
    ax.text(rate1 - 7, 0.9, f"frac_1 = 1 \nfor rate >= {rate1} ", color="tab:red", fontsize=8, ha="right")
    ax.set_xlabel("atrous rate")
    ax.set_ylabel("normalized count (fraction of positions)")
    ax.set_title(f"3x3 atrous conv on a {size}x{size} map, padding = rate (DeepLabv3 Fig. 4)\n"
                 "counted from padded convs of an all-ones map; checked by exact counting", fontsize=9)
    ax.set_xlim(1, max_rate)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_mae(mrows: list[dict], mae_size: int, seed: int, path: str) -> None:
    """dilation_mae.png: MAE between the dilated 3x3 conv and its centre tap vs rate."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot([r["rate"] for r in mrows], [r["mae"] for r in mrows], "o-", color="tab:blue")
    ax.axvline(mae_size, color="gray", ls="--", lw=0.8)
    ax.text(mae_size, max(r["mae"] for r in mrows) * 0.8, f" rate = map size ({mae_size})", fontsize=8)
    ax.set_xlabel("atrous rate")
    ax.set_ylabel("MAE(dilated 3x3, centre-tap 1x1)")
    ax.set_title(f"Seed 004: {mae_size}x{mae_size} maps, N(0,1) weights [4,8,3,3] and inputs [2,8], "
                 f"seed {seed}, float64", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarise(rows: list[dict], mrows: list[dict], mae_size: int = 16) -> dict:
    """The rates where the filter degenerates, and the fractions / MAEs at the figure's rates."""
    by_rate = {r["rate"]: r for r in rows}
    mae_by_rate = {r["rate"]: r["mae"] for r in mrows}
    return {
        "rate_frac9_zero": _first_from(rows, "frac_9", lambda v: v == 0),
        "rate_frac1_one": _first_from(rows, "frac_1", lambda v: v == 1),
        "rate_mae_zero": _first_from(mrows, "mae", lambda v: v == 0.0),
        "frac_9_rate_1": by_rate[1]["frac_9"],
        "frac_9_rate_12": by_rate.get(12, {}).get("frac_9", float("nan")),
        "frac_9_rate_24": by_rate.get(24, {}).get("frac_9", float("nan")),
        "frac_9_rate_36": by_rate.get(36, {}).get("frac_9", float("nan")),
        "frac_1_rate_36": by_rate.get(36, {}).get("frac_1", float("nan")),
        "mae_rate_1": mae_by_rate[1],
        # just below and at the map size of the MAE probe (15 and 16 by default)
        f"mae_rate_{mae_size - 1}": mae_by_rate.get(mae_size - 1, float("nan")),
        f"mae_rate_{mae_size}": mae_by_rate.get(mae_size, float("nan")),
        "counts_cross_checked": 1,
    }


@torch.no_grad()
def run(out_dir: str, logger, size: int = 65, max_rate: int = 66, kernel_size: int = 3,
        mae_size: int = 16, mae_max_rate: int = 17, seed: int = 0) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    rows = valid_weight_rows(size, max_rate, kernel_size)
    write_csv(os.path.join(out_dir, "valid_weights.csv"), ["rate"] + [f"frac_{k}" for k in COUNTS], rows)
    plot_valid_weights(rows, size, max_rate, os.path.join(out_dir, "valid_weights.png"))
    mrows = dilation_mae(size=mae_size, rates=range(1, mae_max_rate + 1), seed=seed)
    write_csv(os.path.join(out_dir, "dilation_mae.csv"), ["rate", "mae", "rel_mae"], mrows)
    plot_mae(mrows, mae_size, seed, os.path.join(out_dir, "dilation_mae.png"))
    metrics = {**summarise(rows, mrows, mae_size), "map_size": size, "mae_map_size": mae_size, "kernel_size": kernel_size}
    log_outputs(logger, out_dir, tables={"valid_weights": "valid_weights.csv", "dilation_mae": "dilation_mae.csv"},
                images={"valid_weights": "valid_weights.png", "dilation_mae": "dilation_mae.png"})
    write_readme(
        out_dir, "dilation_degeneration: a 3x3 atrous filter degenerates to 1x1 (DeepLabv3 Fig. 4)",
        SETUP, metrics,
        ["valid_weights.csv", "valid_weights.png", "dilation_mae.csv", "dilation_mae.png", "metrics.json"],
        claim="As the atrous rate approaches the feature-map size, fewer of the 9 weights of a 3x3 "
              "filter land on the map; at rate >= map size only the centre tap is valid (a 1x1 filter).")
    return metrics
