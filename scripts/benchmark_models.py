"""Wall-clock vs MACs: training-step speed of model variants, interleaved in one process.

The octave and involution claims are about cost; MACs are exact (``models.complexity``) but
wall-clock is what users pay. Variants are timed round-robin (forward + backward, bf16 autocast or
fp32, channels_last, batch 128) so machine noise hits all of them alike; ratios are to the first
variant of each group. The thread count is part of every result: it heads the printed table and
the written .md. A group ``grid:<name>`` holds the distinct nets of ``configs/grid/<name>.yaml``, each
labelled by the first cell that trains it, against that grid's first net: what each job of the grid
costs relative to the others on this machine (which cells fit a time-boxed CPU, which need a GPU).

    python scripts/benchmark_models.py [--rounds 5] [--threads 1] [--precision bf16] [--out results/benchmarks]
    python scripts/benchmark_models.py --groups grid:standard --precision fp32
    python scripts/benchmark_models.py --groups even56 --precision fp32 --threads 2 --compile

``--compile`` also times each variant under ``torch.compile`` (``trainer.compile=true``), interleaved with its eager
steps: ``compile_speedup`` is eager time / compiled time, whether compiling pays on this machine.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments.grid import GRIDS, cell_models  # noqa: E402
from models import create_model  # noqa: E402
from experiments.trained_cost import random_batch, train_step_seconds  # noqa: E402
from models.complexity import profile  # noqa: E402

GROUPS = {
    "octave": [("oct_resnet20", {"alpha": a}) for a in (0.0, 0.125, 0.25, 0.5, 0.75)],
    "rednet": [("bottleneck26", {})] + [("rednet26", {"kernel_size": k}) for k in (3, 5, 7)],
    "even": [("resnet20", {"conv": c}) for c in ("c3", "c2", "c2sp", "c4", "c4sp", "c5")],
    "even56": [("resnet56", {"conv": c}) for c in ("c3", "c2", "c2sp")],
    "blurpool": [("resnet20", {})] + [("resnet20", {"downsample": "blurpool", "filt_size": f}) for f in (1, 3, 5)],
}


def group_models(group: str) -> list[tuple[str, torch.nn.Module]]:
    """(label, model) of one group: a family of ``GROUPS``, or ``grid:<name>`` (the nets of a grid's cells)."""
    if group.startswith("grid:"):
        from hydra.utils import instantiate

        return [(cell, instantiate(model)) for cell, model in cell_models(GRIDS / f"{group.split(':', 1)[1]}.yaml")]
    return [(" ".join([name] + [f"{k}={v}" for k, v in kw.items()]), create_model(name, **kw))
            for name, kw in GROUPS[group]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--groups", nargs="*", default=list(GROUPS),
                    help=f"{', '.join(GROUPS)}, or grid:<name> for a grid under configs/grid")
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="bf16",
                    help="bf16 autocast (the committed numbers) or fp32; bf16 is slow where the CPU emulates it")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (never falls back to the CPU)")
    ap.add_argument("--out", default=None, help="write model_speed.csv and model_speed.md here")
    ap.add_argument("--compile", action="store_true",
                    help="also time each variant under torch.compile, interleaved: the compile_speedup column")
    args = ap.parse_args()
    grids = sorted(p.stem for p in GRIDS.glob("*.yaml"))
    for g in args.groups:
        if g not in GROUPS and not (g.startswith("grid:") and g.split(":", 1)[1] in grids):
            ap.error(f"no group {g!r}; have: {', '.join(GROUPS)}, grid:<{'|'.join(grids)}>")
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"benchmark_models: --device {args.device} but torch sees no CUDA device")
    device = torch.device(args.device)
    x, y = random_batch(args.batch, device)
    rows = []
    for group in args.groups:
        variants = []
        for label, model in group_models(group):
            p = profile(model, (3, 32, 32))
            model = model.to(device, memory_format=torch.channels_last).train()
            steps = [model] + ([torch.compile(model)] if args.compile else [])
            for step in steps:  # warm-up; a compiled model compiles here (forward and backward)
                for _ in range(1 + 2 * (step is not model)):
                    train_step_seconds(step, x, y, args.precision)
            variants.append((label, steps, p, [[] for _ in steps]))
        for _ in range(args.rounds):
            for _, steps, _, times in variants:
                for step, t in zip(steps, times):
                    t.append(train_step_seconds(step, x, y, args.precision))
        base_t = statistics.median(variants[0][3][0])
        base_macs = variants[0][2]["macs"]
        for label, _, p, times in variants:
            t = statistics.median(times[0])
            rows.append({"group": group, "variant": label, "params": p["params"], "macs": p["macs"],
                         "mac_ratio": round(p["macs"] / base_macs, 4), "img_s": round(args.batch / t, 1),
                         "time_ratio": round(t / base_t, 4)})
            if args.compile:
                ct = statistics.median(times[1])
                rows[-1].update(compiled_img_s=round(args.batch / ct, 1), compile_speedup=round(t / ct, 4))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    header = (f"torch {torch.__version__}, {where}, batch {args.batch}, median of {args.rounds} "
              f"interleaved rounds, forward+backward {args.precision} channels_last"
              + (", eager and torch.compile" if args.compile else ""))
    print(header)
    gw, vw = (max(9, *(len(r[k]) for r in rows)) for k in ("group", "variant"))
    print(f"{'group':{gw}s} {'variant':{vw}s} {'params':>9s} {'MACs':>12s} {'MAC ratio':>9s} {'img/s':>7s} "
          f"{'time ratio':>10s}" + (f" {'compiled img/s':>14s} {'compile speedup':>15s}" if args.compile else ""))
    for r in rows:
        print(f"{r['group']:{gw}s} {r['variant']:{vw}s} {r['params']:9d} {r['macs']:12d} {r['mac_ratio']:9.3f} "
              f"{r['img_s']:7.0f} {r['time_ratio']:10.3f}"
              + (f" {r['compiled_img_s']:14.0f} {r['compile_speedup']:15.3f}" if args.compile else ""))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "model_speed.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        (out / "model_speed.md").write_text(markdown(header, rows))
        print(f"wrote {out / 'model_speed.csv'} and {out / 'model_speed.md'}")


def markdown(header: str, rows: list[dict]) -> str:
    """The rows as a Markdown table under the run's settings line (torch, threads, batch, rounds)."""
    lines = [f"Training-step speed vs MACs ({header}).", "", "| " + " | ".join(rows[0]) + " |",
             "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
