"""Inference speed vs evaluation batch size: what ``trainer.eval_batch_size=auto`` picks per device.

Every evaluation (validation each epoch, test, the BlurPool shift evaluator's 290k shifted images) runs
``engine.inference.predict`` in batches of ``trainer.eval_batch_size``. In eval mode each image is inferred
alone, so the batch size changes speed only. The sizes are timed round-robin in one process (noise hits all
alike); ratios are to the largest size.

    python scripts/benchmark_eval.py [--model resnet20] [--threads 1] [--sizes 64 128 256 512 1024] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.inference import EVAL_BATCH_SIZE, Batches, predict  # noqa: E402
from engine.provenance import hardware, now  # noqa: E402
from models import create_model  # noqa: E402


def seconds(model, x, prep, precision: str, batch_size: int) -> float:
    """Wall time of one ``predict`` over ``x``."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    t = time.perf_counter()
    predict(model, x, prep, precision, batch_size)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="fp32")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (never falls back to the CPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"benchmark_eval: --device {args.device} but torch sees no CUDA device")
    device = torch.device(args.device)
    model = create_model(args.model).to(device, memory_format=torch.channels_last).eval()
    prep = Batches((0.5,) * 3, (0.25,) * 3, device, channels_last=True)
    x = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, device=device)
    predict(model, x[: max(args.sizes)], prep, args.precision, max(args.sizes))  # warm-up
    times: dict[int, list[float]] = {bs: [] for bs in args.sizes}
    for _ in range(args.rounds):
        for bs in args.sizes:
            times[bs].append(seconds(model, x, prep, args.precision, bs))
    base = statistics.median(times[max(args.sizes)])
    print(f"{args.model} inference, {hardware(device)}, torch {torch.__version__}, "
          f"{args.precision} channels_last, {args.images} images, median of {args.rounds} interleaved rounds; "
          f"auto picks {EVAL_BATCH_SIZE.get(device.type)} on {device.type}; {now()} UTC")
    print(f"{'batch':>6s} {'img/s':>8s} {'speed vs ' + str(max(args.sizes)):>14s}")
    for bs in args.sizes:
        t = statistics.median(times[bs])
        print(f"{bs:6d} {args.images / t:8.0f} {base / t:14.2f}")


if __name__ == "__main__":
    main()
