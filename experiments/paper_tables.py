"""Probe: the papers' ImageNet cost tables (params, multiply-adds), rebuilt from our layers at 224x224.

Every row of ``experiments/paper_tables.yaml`` (quoted from PAPERS.md 1.4, 2.3, 3.3, 5.3) names a
registered model and its kwargs; the probe builds it, counts params and MACs with
``models.complexity.profile`` (torch.utils.flop_counter; MACs = the papers' "FLOPs") and compares:

- tolerance = the printed precision of the published number: half a unit of its last digit
  (``"25.5"`` M -> 0.05 M, ``"4089"`` M -> 0.5 M, ``"2.367"`` G -> 0.0005 G);
- "adds no parameters" rows (BlurPool) compare with torchvision's own model, measured here,
  tolerance 0;
- RedNet rows also carry ``mmcv`` (mmcls' counter: conv MACs + biases + BatchNorm + ReLU + pooling,
  blind to the involution aggregation), ``mmcv_plus_aggregation``, and ``stem7``: the same model
  with a 7x7 stem involution (params; MACs = ours + biases + BatchNorm + ReLU, no pooling), the
  candidate explanation of ``rednet_note`` in the YAML.

A row whose number is off carries the YAML's note (``note_params`` / ``note_macs``); a mismatch
without a note is flagged "unexplained". Outputs: ``paper_tables.csv`` (one row per model x
quantity), ``paper_tables.md`` (generated from it), ``paper_tables.png`` (ours / published).
"""
from __future__ import annotations

import functools
import os
from decimal import Decimal
from pathlib import Path

import torch
import torchvision
import yaml

from experiments.probe_utils import log_outputs, plt, write_csv, write_readme
from models import create_model
from models.complexity import profile
from models.layers import Involution2d

TABLE = Path(__file__).with_name("paper_tables.yaml")
COLUMNS = ["doc", "table", "label", "model", "kwargs", "quantity", "unit", "ours", "published", "tol", "match",
           "verdict", "mmcv", "mmcv_plus_aggregation", "stem7", "stem7_match", "source", "note"]
POOLS = (torch.nn.MaxPool2d, torch.nn.AvgPool2d, torch.nn.AdaptiveAvgPool2d)
UNITS = {"M": 1e6, "G": 1e9}


def half_unit(printed: str) -> float:
    """Half a unit of the last printed digit: the tolerance of a rounded number ("25.5" -> 0.05)."""
    return float(Decimal(5).scaleb(Decimal(printed).as_tuple().exponent - 1))


def aggregation_macs(model: torch.nn.Module, input_size=(3, 224, 224), prof: dict | None = None) -> int:
    """MACs of every involution aggregation (profile's ``C*K*K`` per output pixel), from profile's per-module counts."""
    prof = prof or profile(model, input_size)
    per = {**prof["per_module"], "": prof["macs"]}
    total = 0
    for name, m in model.named_modules():
        if isinstance(m, Involution2d):
            sub = f"{name}." if name else ""
            total += per[name] - sum(per.get(f"{sub}{c}", 0) for c in ("conv1", "conv2"))
    return total


def mmcv_macs(model: torch.nn.Module, input_size=(3, 224, 224), pools: bool = True) -> int:
    """mmcv's count (mmcls tools/get_flops.py: ``mmcv.cnn.get_model_complexity_info``, a fork of ptflops):
    ptflops' module hooks only -- conv MACs + bias, BatchNorm 2 per element, ReLU and pooling 1 per
    element, linear; the involution aggregation (not a module) is invisible to it. ``pools=False``
    drops the pooling layers."""
    from ptflops import get_model_complexity_info

    macs, _ = get_model_complexity_info(model, tuple(input_size), as_strings=False, print_per_layer_stat=False,
                                        backend="pytorch", ignore_modules=[] if pools else list(POOLS),
                                        backend_specific_config={"count_functional": False})
    return int(macs)


@functools.lru_cache(maxsize=None)
def _torchvision_params(name: str) -> int:
    return sum(p.numel() for p in getattr(torchvision.models, name)().parameters())


def _compare(ours: float, printed: str, scale: float) -> tuple[float, float, bool]:
    tol = half_unit(printed)
    value = ours / scale
    return value, tol, abs(value - float(printed)) <= tol + 1e-12


def _rednet_alternatives(spec: dict, model: torch.nn.Module, prof: dict, input_size) -> dict:
    """The RedNet counting conventions of ``rednet_note``, for the model as built and with a 7x7 stem involution."""
    mm = mmcv_macs(model, input_size)
    alt = create_model(spec["model"], **{**spec.get("kwargs", {}), "stem_kernel_size": 7})
    alt_prof = profile(alt, input_size)
    return {"mmcv": mm, "mmcv_plus_aggregation": mm + aggregation_macs(model, input_size, prof),
            "stem7_params": alt_prof["params"],
            "stem7_macs": mmcv_macs(alt, input_size, pools=False) + aggregation_macs(alt, input_size, alt_prof)}


def _rows_for(spec: dict, prof: dict, model: torch.nn.Module, input_size=(3, 224, 224)) -> list[dict]:
    base = {k: spec.get(k, "") for k in ("doc", "table", "label", "model", "source")}
    base["kwargs"] = ", ".join(f"{k}={v}" for k, v in spec.get("kwargs", {}).items())
    rows = []
    alt = _rednet_alternatives(spec, model, prof, tuple(input_size)) if spec.get("rednet") else None
    if "params" in spec:
        if spec["params"].startswith("torchvision."):
            ref = _torchvision_params(spec["params"].split(".", 1)[1])
            value, tol, ok = prof["params"], 0.0, prof["params"] == ref
            rows.append({**base, "quantity": "params", "unit": "1", "ours": value, "published": f"{ref} ({spec['params']})",
                         "tol": tol, "match": int(ok), "note": spec.get("note_params", "")})
        else:
            value, tol, ok = _compare(prof["params"], spec["params"], 1e6)
            rows.append({**base, "quantity": "params", "unit": "M", "ours": value, "published": spec["params"],
                         "tol": tol, "match": int(ok), "note": spec.get("note_params", "")})
            if alt:
                v, _, ok7 = _compare(alt["stem7_params"], spec["params"], 1e6)
                rows[-1].update(stem7=v, stem7_match=int(ok7))
    if "macs" in spec:
        unit = spec["macs_unit"]
        value, tol, ok = _compare(prof["macs"], spec["macs"], UNITS[unit])
        row = {**base, "quantity": "macs", "unit": unit, "ours": value, "published": spec["macs"], "tol": tol,
               "match": int(ok), "note": spec.get("note_macs", "")}
        if alt:
            v, _, ok7 = _compare(alt["stem7_macs"], spec["macs"], UNITS[unit])
            row.update(mmcv=alt["mmcv"] / UNITS[unit], mmcv_plus_aggregation=alt["mmcv_plus_aggregation"] / UNITS[unit],
                       stem7=v, stem7_match=int(ok7), note=row["note"] or "see rednet_note")
        rows.append(row)
    for r in rows:
        r["verdict"] = "match" if r["match"] else ("mismatch (explained)" if r["note"] and not
                                                   r["note"].startswith("unexplained") and r["note"] != "see rednet_note"
                                                   else "mismatch (unexplained)")
        for k in COLUMNS:
            r.setdefault(k, "")
    return rows


def _markdown(rows: list[dict], rednet_note: str) -> str:
    head = ["| doc | model | kwargs | quantity | ours | published | tolerance | verdict | source |",
            "|---|---|---|---|---|---|---|---|---|"]
    body = []
    for r in rows:
        ours = f"{r['ours']:,}" if r["unit"] == "1" else f"{r['ours']:.4f} {r['unit']}"
        extra = ""
        if r["mmcv"] != "":
            extra = f" (mmcv {r['mmcv']:.4f}, mmcv + aggregation {r['mmcv_plus_aggregation']:.4f})"
        if r["stem7"] != "":
            extra += f"; 7x7 stem involution{' (no pooling)' if r['quantity'] == 'macs' else ''}: {r['stem7']:.4f}"
        body.append(f"| {r['doc']} | {r['label']} | {r['kwargs']} | {r['quantity']} | {ours}{extra} | "
                    f"{r['published']} | {r['tol']:g} | {r['verdict']} | {r['source']} |")
    notes = [f"- **{r['label']} {r['quantity']}**: {r['note']}" for r in rows
             if r["note"] and r["note"] != "see rednet_note"]
    return "\n".join(["# Published ImageNet costs vs our models (224x224, batch 1)", "",
                      "Generated by `experiments/paper_tables.py`; MACs = multiply-adds (the papers' \"FLOPs\"), "
                      "counted by `models.complexity.profile`. Tolerance = half a unit of the published number's "
                      "last printed digit.", "", *head, *body, "", "## Mismatches", "", *notes,
                      f"- **RedNet MACs**: {rednet_note}", ""])


def _plot(rows: list[dict], path: str) -> None:
    pts = [r for r in rows if r["unit"] != "1"]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(pts) + 1.2))
    for i, r in enumerate(pts):
        pub = float(r["published"])
        ratio = r["ours"] / pub
        band = r["tol"] / pub
        ax.plot([1 - band, 1 + band], [i, i], color="0.7", lw=6, solid_capstyle="butt")
        ax.plot(ratio, i, "o", color="tab:green" if r["match"] else "tab:red")
    ax.axvline(1.0, color="0.4", lw=0.8)
    ax.set_yticks(range(len(pts)), [f"{r['label']} {r['quantity']}" for r in pts], fontsize=7)
    ax.set_xlabel("ours / published (grey: printed precision)")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(out_dir: str, logger, input_size=(3, 224, 224), table: str | None = None) -> dict:
    spec = yaml.safe_load(Path(table or TABLE).read_text())
    rows: list[dict] = []
    torch.manual_seed(0)
    for s in spec["rows"]:
        model = create_model(s["model"], **s.get("kwargs", {}))
        rows += _rows_for(s, profile(model, tuple(input_size)), model, tuple(input_size))
    write_csv(os.path.join(out_dir, "paper_tables.csv"), COLUMNS, rows)
    Path(out_dir, "paper_tables.md").write_text(_markdown(rows, spec["rednet_note"]))
    _plot(rows, os.path.join(out_dir, "paper_tables.png"))

    def count(q: str, pred) -> int:
        return sum(1 for r in rows if r["quantity"] == q and pred(r))

    metrics = {
        "n_rows": len(rows),
        "n_match": sum(r["match"] for r in rows),
        "n_params_rows": count("params", lambda r: True),
        "n_params_match": count("params", lambda r: r["match"]),
        "n_macs_rows": count("macs", lambda r: True),
        "n_macs_match": count("macs", lambda r: r["match"]),
        "n_explained": sum(r["verdict"] == "mismatch (explained)" for r in rows),
        "n_unexplained": sum(r["verdict"] == "mismatch (unexplained)" for r in rows),
    }
    for r in rows:
        if r["model"].startswith("imagenet_rednet") and r["quantity"] == "macs":
            tag = r["model"].replace("imagenet_", "")
            metrics[f"{tag}_macs_g"] = r["ours"]
            metrics[f"{tag}_macs_mmcv_agg_g"] = r["mmcv_plus_aggregation"]
            metrics[f"{tag}_macs_stem7_g"] = r["stem7"]
    metrics["n_rednet_stem7_match"] = sum(r["stem7_match"] == 1 for r in rows)
    metrics["n_rednet_rows"] = sum(r["stem7_match"] != "" for r in rows)
    log_outputs(logger, out_dir, tables={"paper_tables": "paper_tables.csv"}, images={"paper_tables": "paper_tables.png"})
    write_readme(out_dir, "paper_tables: published ImageNet params / MACs vs our models", __doc__.split("\n\n", 1)[1],
                 metrics, ["paper_tables.csv", "paper_tables.md", "paper_tables.png", "metrics.json"],
                 claim="The papers' ImageNet cost tables (params and multiply-adds of ResNet-50 C3/C2/C2sp and "
                       "0.5x, DenseNet-121, RedNet-26..152, Oct-ResNet-50/101, anti-aliased ResNets) follow "
                       "from the architectures.")
    return metrics
