"""Probe: convolution arithmetic of seed 001's catalogue, measured vs analytic, in one table.

Sources: seed document 001 (vanilla, grouped, depthwise-separable, transposed, dilated, octave and
3-D convolutions; multiplications ``n*oc*oh*ow*(ic/g)*kh*kw``), Dumoulin & Visin's guide
(PAPERS.md 5.4, R1-R15), OctConv (Chen et al., ICCV 2019; PAPERS.md 5.1 O3: MACs
``1 - 1.5a + 0.75a^2`` and memory ``1 - 0.75a`` of a vanilla conv) and the even-kernel poster
(PAPERS.md 1.4: ResNet-20 params, claim E3: symmetric padding adds no params or FLOPs).

Every row puts ... see ``SETUP`` (also the run README's Setup section).

Outputs: ``arithmetic.csv`` (section, name, quantity, measured, analytic, agree, tol,
analytic_source), ``arithmetic.md`` (markdown table generated from the CSV), ``octave_ratios.png``.
"""
from __future__ import annotations

import os

import torch

from experiments.arithmetic_rows import COLUMNS, Rows, complexity_rows, model_rows, octave_rows, output_size_rows
from experiments.measured_rf import rf_rows
from experiments.probe_utils import log_outputs, plt, read_csv, write_csv, write_readme

# What the probe does, written into its README ("Setup"); the module docstring points here.
SETUP = """\
Every row puts a *measured* quantity next to an *analytic* one (training-free, exact):

- ``output_size``: torch's real output shapes (``nn.Conv2d``, ``nn.ConvTranspose2d``, ``nn.Conv3d``)
  vs ``models.arithmetic.conv_output_size`` / ``conv_transpose_output_size`` (the guide's R1-R15,
  seed 001's examples); ``output_padding_for`` checked by building the transposed conv with it;
  ``effective_kernel_size`` vs the extent of a dilated kernel's impulse response.
- ``complexity``: params and MACs from ``models.complexity.profile`` (torch's FlopCounterMode,
  MACs = FLOPs/2) vs seed 001's formula (``models.arithmetic.conv_macs`` / ``conv_params``; a
  transposed conv costs what its forward conv costs; 3-D: ``n*oc*od*oh*ow*(ic/g)*kd*kh*kw``), for
  vanilla, grouped (g = 2, 4), depthwise-separable (and its cost ratio ``1/C_out + 1/k^2``),
  transposed (with output_padding), dilated and 3-D convs.
- ``octave``: ``OctaveConv2d`` (C = 64 in and out, alpha_in = alpha_out = a, 3x3, 32x32) profiled
  against a vanilla 3x3 conv: the MAC ratio vs ``1 - 1.5a + 0.75a^2`` and the output-activation
  ratio (``profile``'s ``activations``: high + low output elements) vs ``1 - 0.75a``, for
  a = 0, .125, .25, .5, .75 (a*64 is an integer for all of them, so the ratios are exact).
- ``receptive_field``: ``models.arithmetic.receptive_field(model, input_size).size`` / ``.jump``
  vs a gradient measurement: a float64 copy of the model with every activation replaced by
  identity, max-pools by average pools of the same geometry (max-pool gradients reach one input
  per window only), all conv weights set to 1/fan_in, BN to identity statistics and biases 0 is
  fed an all-ones input; the extent of the non-zero gradient of the centre unit of the last
  feature map (input of the global pool) is the measured RF, the input/output size ratio the jump.
  The input is large enough that the RF is not clipped by the border (checked). The RF does not
  depend on channel counts, so models are built with a small width (stated per row) to stay fast.
- ``models``: ResNet-20 params per kernel vs the poster's values (PAPERS.md 1.4, 0.5 % tolerance:
  three significant digits), and C2sp == C2, C4sp == C4 in params and MACs (E3).
"""

DEFAULT_RF_MODELS = ("resnet20/c3", "resnet20/c2", "resnet20/c2sp", "resnet20/c4", "resnet20/c5", "plain/c3",
                     "plain/c2sp", "vgg13_bn", "mobilenet_cifar")


def _write_markdown(csv_path: str, md_path: str, title: str) -> None:
    rows = read_csv(csv_path)
    cols = ["section", "name", "quantity", "measured", "analytic", "agree", "tol", "analytic_source"]

    def fmt(v: str) -> str:
        try:
            f = float(v)
        except ValueError:
            return v
        if f.is_integer() and "." not in v and "e" not in v.lower():
            return v
        return f"{f:.6g}"

    n_ok = sum(r["agree"] == "1" for r in rows)
    lines = [f"# {title}", "", f"{n_ok}/{len(rows)} rows agree. Generated from `arithmetic.csv` by "
             "`experiments/conv_arithmetic.py`; do not edit by hand.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        r = dict(r, agree="yes" if r["agree"] == "1" else "**NO**")
        lines.append("| " + " | ".join(fmt(r[c]).replace("|", "\\|") for c in cols) + " |")
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")


@torch.no_grad()
def _no_grad_sections(R: Rows, octave_alphas, octave_channels: int, octave_size: int):
    output_size_rows(R)
    complexity_rows(R)
    octs = octave_rows(R, octave_alphas, octave_channels, octave_size)
    model_rows(R)
    return octs


def compute(octave_alphas, octave_channels: int, octave_size: int, rf_models, rf_width: float):
    """Every section's rows, the octave cost ratios, and the RF models that are not registered."""
    R = Rows()
    octs = _no_grad_sections(R, octave_alphas, octave_channels, octave_size)
    missing = rf_rows(R, list(rf_models or []), rf_width)  # needs autograd
    return R.rows, octs, missing


def plot_octave_ratios(octs: list[dict], octave_channels: int, octave_size: int, path: str) -> None:
    """octave_ratios.png: measured MAC / memory ratios of OctaveConv2d vs the O3 formulas."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    aa = [i / 100 for i in range(0, 101)]
    ax.plot(aa, [1 - 1.5 * a + 0.75 * a**2 for a in aa], "-", color="tab:blue", label="MACs: 1 - 1.5a + 0.75a^2")
    ax.plot(aa, [1 - 0.75 * a for a in aa], "-", color="tab:orange", label="memory: 1 - 0.75a")
    ax.plot([o["alpha"] for o in octs], [o["mac_ratio"] for o in octs], "o", color="tab:blue",
            label="measured MACs (models.complexity.profile)")
    ax.plot([o["alpha"] for o in octs], [o["mem_ratio"] for o in octs], "s", color="tab:orange",
            label="measured output activations")
    for o in octs:
        ax.annotate(f"{o['mac_ratio']:.3f}", (o["alpha"], o["mac_ratio"]), textcoords="offset points",
                    xytext=(4, -11), fontsize=7, color="tab:blue")
    ax.set_xlabel("alpha (fraction of low-frequency channels)")
    ax.set_ylabel("OctaveConv2d / Conv2d")
    ax.set_title(f"OctConv cost vs a vanilla conv ({octave_channels}->{octave_channels}, 3x3, "
                 f"{octave_size}x{octave_size}, alpha_in = alpha_out)", fontsize=9)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarise(rows: list[dict], octs: list[dict], missing: list[str]) -> dict:
    """Agreement counts per section and the measured octave ratios per alpha."""
    metrics: dict = {
        "all_agree": int(all(r["agree"] for r in rows)),
        "n_rows": len(rows),
        "n_disagree": sum(1 - r["agree"] for r in rows),
        "rf_models_missing": len(missing),
    }
    for sec in ("output_size", "complexity", "octave", "receptive_field", "models"):
        metrics[f"n_rows_{sec}"] = sum(r["section"] == sec for r in rows)
    for o in octs:
        tag = f"{o['alpha']:g}".replace(".", "")
        metrics[f"octave_mac_ratio_a{tag}"] = o["mac_ratio"]
        metrics[f"octave_mem_ratio_a{tag}"] = o["mem_ratio"]
    return metrics


def _readme_setup(rows: list[dict], missing: list[str]) -> str:
    """SETUP, plus the skipped models and every disagreeing row of this run."""
    setup = SETUP
    if missing:
        setup += f"\nSkipped (model not registered): {', '.join(missing)}.\n"
    bad = [f"{r['section']} / {r['name']} / {r['quantity']}: measured {r['measured']} vs analytic {r['analytic']}"
           for r in rows if not r["agree"]]
    if bad:
        setup += "\nRows that DISAGREE:\n\n" + "\n".join(f"- {b}" for b in bad) + "\n"
    return setup


def run(out_dir: str, logger, octave_alphas=(0.0, 0.125, 0.25, 0.5, 0.75), octave_channels: int = 64,
        octave_size: int = 32, rf_models=DEFAULT_RF_MODELS, rf_width: float = 0.25) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    rows, octs, missing = compute(octave_alphas, octave_channels, octave_size, rf_models, rf_width)
    csv_path = write_csv(os.path.join(out_dir, "arithmetic.csv"), COLUMNS, rows)
    _write_markdown(csv_path, os.path.join(out_dir, "arithmetic.md"), "Convolution arithmetic: measured vs analytic")
    plot_octave_ratios(octs, octave_channels, octave_size, os.path.join(out_dir, "octave_ratios.png"))
    metrics = summarise(rows, octs, missing)
    log_outputs(logger, out_dir, tables={"arithmetic": "arithmetic.csv"}, images={"octave_ratios": "octave_ratios.png"})
    write_readme(out_dir, "conv_arithmetic: measured vs analytic convolution arithmetic",
                 _readme_setup(rows, missing), metrics,
                 ["arithmetic.csv", "arithmetic.md", "octave_ratios.png", "metrics.json"],
                 claim="Output sizes, parameter and MAC counts of seed 001's conv catalogue follow the "
                       "closed-form formulas; OctConv costs 1 - 1.5a + 0.75a^2 of the MACs and 1 - 0.75a "
                       "of the activation memory of a vanilla conv.")
    return metrics
