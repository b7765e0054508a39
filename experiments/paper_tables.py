"""Probe: the papers' ImageNet cost tables (params, multiply-adds), rebuilt from our layers at 224x224.

Every row of ``experiments/paper_tables.yaml`` (quoted from PAPERS.md 1.4, 2.3, 3.3, 5.3) names a
registered model and its kwargs; the probe builds it, counts params and MACs with
``models.complexity.profile`` (torch.utils.flop_counter; MACs = the papers' "FLOPs") and compares:

- tolerance = the printed precision of the published number: half a unit of its last digit
  (``"25.5"`` M -> 0.05 M, ``"4089"`` M -> 0.5 M, ``"2.367"`` G -> 0.0005 G), never wider;
- "adds no parameters" rows (BlurPool) compare with torchvision's own model, measured here,
  tolerance 0;
- a row may name the publication's build and counter (``convention_params`` / ``convention_macs``,
  ``macs_counter``), found in the reference code: the RedNet README figures are a 7x7-stem-involution
  build counted as mmcls ``tools/get_flops.py`` counts (mmcv's module hooks on backbone + neck, head
  not run: conv MACs + bias, BatchNorm 2, ReLU and pooling 1 per element) plus the involution
  aggregation (``C*K*K`` per output pixel, invisible to mmcv). A number that fits under the stated
  convention is "match (convention: ...)". RedNet rows also show ``profile_macs`` (ours on the same
  build), ``mmcls`` (mmcls get_flops alone) and ``cls_code`` (the same count on the released cls code's
  3x3-stem build);
- a row may say the publication printed a quantity truncated (``truncated``): the probe checks that
  truncating ours to the printed digits gives the printed string exactly ("mismatch (explained:
  printed truncated, not rounded)"); if it does not, the row stays "mismatch (unexplained)".

Other mismatches carry the YAML's note (``note_params`` / ``note_macs``); one without a note, or
with a note starting "unexplained", is "mismatch (unexplained)". Outputs: ``paper_tables.csv`` (one
row per model x quantity), ``paper_tables.md`` (generated from it), ``paper_tables.png`` (ours /
published).
"""
from __future__ import annotations

import functools
import os
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import torch
import torchvision
import yaml

from experiments.probe_utils import log_outputs, plt, write_csv, write_readme
from models import create_model
from models.complexity import profile
from models.layers import Involution2d

TABLE = Path(__file__).with_name("paper_tables.yaml")
COLUMNS = ["doc", "table", "label", "model", "kwargs", "quantity", "unit", "ours", "counter", "published", "tol",
           "match", "verdict", "convention", "truncated", "mmcls", "profile_macs", "cls_code", "cls_code_match",
           "source", "note"]
UNITS = {"M": 1e6, "G": 1e9}


def half_unit(printed: str) -> float:
    """Half a unit of the last printed digit: the tolerance of a rounded number ("25.5" -> 0.05)."""
    return float(Decimal(5).scaleb(Decimal(printed).as_tuple().exponent - 1))


def truncated(value: float, printed: str) -> str:
    """``value`` cut (not rounded) to the digits ``printed`` shows: (6.791, "6.7") -> "6.7"."""
    return str(Decimal(repr(value)).quantize(Decimal(printed), rounding=ROUND_FLOOR))


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


def mmcv_macs(model: torch.nn.Module, input_size=(3, 224, 224)) -> int:
    """mmcv's count (``mmcv.cnn.get_model_complexity_info``, a fork of ptflops; mmcv/cnn/utils/flops_counter.py):
    ptflops' module hooks only -- conv MACs + bias, BatchNorm 2 per element, ReLU and pooling 1 per
    (input) element, linear; the involution aggregation (not a module) is invisible to it."""
    from ptflops import get_model_complexity_info

    macs, _ = get_model_complexity_info(model, tuple(input_size), as_strings=False, print_per_layer_stat=False,
                                        backend="pytorch", backend_specific_config={"count_functional": False})
    return int(macs)


def extract_feat(model: torch.nn.Module) -> torch.nn.Sequential:
    """mmcls ``ImageClassifier.extract_feat`` of our classifier: its children in order, without the final ``fc``
    (backbone + pooling neck; the head is not run). Needs ``forward = fc(flatten(children...))``."""
    names = [n for n, _ in model.named_children()]
    if not names or names[-1] != "fc" or not isinstance(model.fc, torch.nn.Linear):
        raise ValueError(f"extract_feat needs a model whose last child is the linear classifier `fc`; got {names}")
    return torch.nn.Sequential(*[m for n, m in model.named_children() if n != "fc"])


def mmcls_get_flops(model: torch.nn.Module, input_size=(3, 224, 224)) -> int:
    """mmcls tools/get_flops.py: ``model.forward = model.extract_feat``, then mmcv's counter (``mmcv_macs``)."""
    return mmcv_macs(extract_feat(model), input_size)


def _macs(counter: str, model: torch.nn.Module, prof: dict, input_size) -> int:
    if counter == "profile":
        return prof["macs"]
    if counter == "mmcls_plus_aggregation":
        return mmcls_get_flops(model, input_size) + aggregation_macs(model, input_size, prof)
    raise ValueError(f"macs_counter must be 'profile' or 'mmcls_plus_aggregation', got {counter!r}")


@functools.lru_cache(maxsize=None)
def _torchvision_params(name: str) -> int:
    return sum(p.numel() for p in getattr(torchvision.models, name)().parameters())


def _compare(ours: float, printed: str, scale: float) -> tuple[float, float, bool]:
    tol = half_unit(printed)
    value = ours / scale
    return value, tol, abs(value - float(printed)) <= tol + 1e-12


def _cls_code(spec: dict, input_size) -> dict:
    """RedNet rows: params and MACs (the row's counter) of the released cls code's build (3x3 stem involution)."""
    kwargs = {k: v for k, v in spec.get("kwargs", {}).items() if k != "stem_kernel_size"}
    model = create_model(spec["model"], **kwargs)
    prof = profile(model, input_size)
    return {"params": prof["params"], "macs": _macs(spec.get("macs_counter", "profile"), model, prof, input_size)}


def _verdict(r: dict, spec: dict) -> str:
    if r["match"]:
        return f"match (convention: {r['convention']})" if r["convention"] else "match"
    if r["quantity"] in spec.get("truncated", []):
        if truncated(r["ours"], r["published"]) == r["published"]:
            return "mismatch (explained: printed truncated, not rounded)"
        return "mismatch (unexplained)"
    return "mismatch (explained)" if r["note"] and not r["note"].startswith("unexplained") else "mismatch (unexplained)"


def _rows_for(spec: dict, prof: dict, model: torch.nn.Module, input_size=(3, 224, 224)) -> list[dict]:
    base = {k: spec.get(k, "") for k in ("doc", "table", "label", "model", "source")}
    base["kwargs"] = ", ".join(f"{k}={v}" for k, v in spec.get("kwargs", {}).items())
    rows = []
    cls = _cls_code(spec, input_size) if spec.get("rednet") else None
    if "params" in spec:
        row = {**base, "quantity": "params", "counter": "trainable params", "note": spec.get("note_params", ""),
               "convention": spec.get("convention_params", "")}
        if spec["params"].startswith("torchvision."):
            ref = _torchvision_params(spec["params"].split(".", 1)[1])
            row.update(unit="1", ours=prof["params"], published=f"{ref} ({spec['params']})", tol=0.0,
                       match=int(prof["params"] == ref))
        else:
            value, tol, ok = _compare(prof["params"], spec["params"], 1e6)
            row.update(unit="M", ours=value, published=spec["params"], tol=tol, match=int(ok))
            if cls:
                v, _, ok3 = _compare(cls["params"], spec["params"], 1e6)
                row.update(cls_code=v, cls_code_match=int(ok3))
        rows.append(row)
    if "macs" in spec:
        unit, counter = spec["macs_unit"], spec.get("macs_counter", "profile")
        value, tol, ok = _compare(_macs(counter, model, prof, input_size), spec["macs"], UNITS[unit])
        row = {**base, "quantity": "macs", "unit": unit, "ours": value, "counter": counter, "published": spec["macs"],
               "tol": tol, "match": int(ok), "note": spec.get("note_macs", ""), "convention": spec.get("convention_macs", "")}
        if counter != "profile":
            row.update(profile_macs=prof["macs"] / UNITS[unit], mmcls=mmcls_get_flops(model, input_size) / UNITS[unit])
        if cls:
            v, _, ok3 = _compare(cls["macs"], spec["macs"], UNITS[unit])
            row.update(cls_code=v, cls_code_match=int(ok3))
        rows.append(row)
    for r in rows:
        r["truncated"] = truncated(r["ours"], r["published"]) if r["quantity"] in spec.get("truncated", []) else ""
        r["verdict"] = _verdict(r, spec)
        for k in COLUMNS:
            r.setdefault(k, "")
    return rows


def _ours_cell(r: dict) -> str:
    if r["unit"] == "1":
        return f"{r['ours']:,}"
    cell = f"{r['ours']:.4f} {r['unit']}"
    if r["mmcls"] != "":
        cell += f" (mmcls get_flops {r['mmcls']:.4f} + aggregation; our profile {r['profile_macs']:.4f})"
    if r["cls_code"] != "":
        cell += f"; cls code, 3x3 stem: {r['cls_code']:.4f}"
    if r["truncated"]:
        cell += f"; truncated: {r['truncated']}"
    return cell


def _markdown(rows: list[dict], rednet_note: str) -> str:
    head = ["| doc | model | kwargs | quantity | ours | published | tolerance | verdict | source |",
            "|---|---|---|---|---|---|---|---|---|"]
    body = [f"| {r['doc']} | {r['label']} | {r['kwargs']} | {r['quantity']} | {_ours_cell(r)} | {r['published']} | "
            f"{r['tol']:g} | {r['verdict']} | {r['source']} |" for r in rows]
    notes = [f"- **{r['label']} {r['quantity']}**: {r['note']}" for r in rows if r["note"]]
    return "\n".join(["# Published ImageNet costs vs our models (224x224, batch 1)", "",
                      "Generated by `experiments/paper_tables.py`; MACs = multiply-adds (the papers' \"FLOPs\"), "
                      "counted by `models.complexity.profile` unless the row states the publication's counter. "
                      "Tolerance = half a unit of the published number's last printed digit.", "", *head, *body, "",
                      "## Conventions and mismatches", "", f"- **RedNet (build and counter)**: {rednet_note}", *notes,
                      ""])


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
        "n_convention": sum(r["verdict"].startswith("match (convention") for r in rows),
        "n_explained": sum(r["verdict"].startswith("mismatch (explained") for r in rows),
        "n_unexplained": sum(r["verdict"] == "mismatch (unexplained)" for r in rows),
    }
    rednet = [r for r in rows if r["model"].startswith("imagenet_rednet")]
    for r in rednet:
        if r["quantity"] == "macs":
            tag = r["model"].replace("imagenet_", "")
            metrics[f"{tag}_macs_g"] = r["profile_macs"] if r["profile_macs"] != "" else r["ours"]  # our profile count
            metrics[f"{tag}_macs_mmcv_agg_g"] = r["ours"]  # the compared count: mmcls get_flops + aggregation
            metrics[f"{tag}_macs_cls_code_g"] = r["cls_code"]  # same counter, the cls code's 3x3 stem
    metrics["n_rednet_rows"] = len(rednet)
    metrics["n_rednet_stem7_match"] = sum(r["match"] for r in rednet)  # README figures fitted by the 7x7-stem build
    metrics["n_rednet_cls_code_match"] = sum(r["cls_code_match"] == 1 for r in rednet)
    log_outputs(logger, out_dir, tables={"paper_tables": "paper_tables.csv"}, images={"paper_tables": "paper_tables.png"})
    write_readme(out_dir, "paper_tables: published ImageNet params / MACs vs our models", __doc__.split("\n\n", 1)[1],
                 metrics, ["paper_tables.csv", "paper_tables.md", "paper_tables.png", "metrics.json"],
                 claim="The papers' ImageNet cost tables (params and multiply-adds of ResNet-50 C3/C2/C2sp and "
                       "0.5x, DenseNet-121, RedNet-26..152, Oct-ResNet-50/101, anti-aliased ResNets) follow "
                       "from the architectures.")
    return metrics
