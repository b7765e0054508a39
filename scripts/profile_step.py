"""Where a training step's time goes: torch.profiler over forward + backward of one net, top ops by self time.

    python scripts/profile_step.py resnet20 conv=c2sp --device cuda      # top ops by self CUDA time
    python scripts/profile_step.py rednet26 kernel_size=7 --threads 1     # on the CPU, by self CPU time
    python scripts/profile_step.py resnet56 conv=c2sp --device cuda --trace c2sp.json   # + a Chrome trace

The step is the one ``scripts/benchmark_models.py`` times (``experiments.trained_cost.train_step_seconds``:
random batch, channels_last, fp32 or bf16 autocast), run ``--warmup`` times, then ``--steps`` times under the
profiler. The table is torch's ``key_averages().table``, sorted by self device time on CUDA and by self CPU time
on a CPU, then the ops a step launches (CUDA kernels on a GPU, leaf aten ops on a CPU). Speed only: it shows what
makes a variant slower than its MACs say; benchmark_models.py gives the ratios.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments.trained_cost import random_batch, train_step_seconds  # noqa: E402
from models import create_model  # noqa: E402


def model_kwargs(pairs: list[str]) -> dict:
    """``["conv=c2sp", "kernel_size=7"]`` -> ``{"conv": "c2sp", "kernel_size": 7}`` (values parsed as YAML)."""
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise ValueError(f"model arguments are key=value, got {' '.join(bad)!r}")
    return {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in pairs)}


def profile_step(model: torch.nn.Module, device: torch.device, precision: str, batch: int, steps: int,
                 warmup: int) -> torch.profiler.profile:
    """Profile ``steps`` training steps of ``model`` (after ``warmup`` unprofiled ones) on a random batch."""
    model = model.to(device, memory_format=torch.channels_last).train()
    x, y = random_batch(batch, device)
    for _ in range(warmup):
        train_step_seconds(model, x, y, precision)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            train_step_seconds(model, x, y, precision)
    return prof


def ops_per_step(prof: torch.profiler.profile, steps: int) -> tuple[str, float]:
    """What a step launches: CUDA kernels (and memcpy/memset) on a GPU, else leaf aten ops (those that call no
    other aten op, views included): a small-kernel net is launch-bound when this is large for its MACs."""
    events = prof.events()
    cuda = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    if cuda:
        return "CUDA kernels", len(cuda) / steps
    leaf = [e for e in events if e.name.startswith("aten::") and not any(c.name.startswith("aten::") for c in e.cpu_children)]
    return "leaf aten ops", len(leaf) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a registered model name (models.list_models()), e.g. resnet20")
    ap.add_argument("kwargs", nargs="*", help="model arguments as key=value, e.g. conv=c2sp kernel_size=7")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (never falls back to the CPU)")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5, help="profiled steps")
    ap.add_argument("--warmup", type=int, default=2, help="unprofiled steps first (cuDNN autotuning, allocator)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    ap.add_argument("--rows", type=int, default=15, help="ops in the table")
    ap.add_argument("--trace", default=None, help="also write a Chrome trace (chrome://tracing, Perfetto) here")
    args = ap.parse_args()
    if min(args.batch, args.steps, args.rows) < 1 or args.warmup < 0:
        ap.error("--batch, --steps and --rows must be >= 1, --warmup >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"profile_step: --device {args.device} but torch sees no CUDA device")
    try:
        model = create_model(args.model, **model_kwargs(args.kwargs))
    except (ValueError, TypeError) as e:
        sys.exit(f"profile_step: {e}")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    prof = profile_step(model, device, args.precision, args.batch, args.steps, args.warmup)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"{args.model} {' '.join(args.kwargs)}: torch {torch.__version__}, {where}, batch {args.batch}, "
          f"{args.steps} steps of forward+backward {args.precision} channels_last")
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=args.rows))
    what, n = ops_per_step(prof, args.steps)
    print(f"{what} per step: {n:.0f}")
    if args.trace:
        prof.export_chrome_trace(args.trace)
        print(f"wrote {args.trace}")


if __name__ == "__main__":
    main()
