"""Shift-consistency metrics of a trained classifier (Zhang, ICML 2019, "Making Convolutional
Networks Shift-Invariant Again"; PAPERS.md 2.2).

Conventions (stated, since papers differ):
- consistency = % of test images whose top-1 class agrees between two copies shifted by two
  *independent* random offsets (dy, dx), each uniform in {-max_shift..max_shift}, drawn per image;
  averaged over ``passes`` passes with fixed seeds (the paper draws one offset per batch of 8).
- ``circular``: torch.roll (no boundary artefacts); ``translate``: zero-filled translation.
- diagonal stability: mean p(true class) for a circular shift (s, s), s = 0..``diag_max``.
"""
from __future__ import annotations

import csv
from pathlib import Path

import torch

from engine.inference import predict


def shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, mode: str) -> torch.Tensor:
    """Shift each image ``x[i]`` by (dy[i], dx[i]) px: ``circular`` (roll) or ``translate`` (zero fill)."""
    b, _, h, w = x.shape
    ys = (torch.arange(h, device=x.device)[None] - dy[:, None])  # source row of each output row
    xs = (torch.arange(w, device=x.device)[None] - dx[:, None])
    if mode == "circular":
        ys, xs = ys % h, xs % w
    elif mode != "translate":
        raise ValueError(f"shift mode {mode!r}: allowed circular, translate")
    valid = ((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :]
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[bi, ys.clamp(0, h - 1)[:, :, None], xs.clamp(0, w - 1)[:, None, :]]
    return (out * valid[..., None].to(out.dtype)).permute(0, 3, 1, 2)


def consistency(model, x_u8, prep, precision: str = "fp32", max_shift: int = 4, passes: int = 5,
                mode: str = "circular", seed: int = 0, batch_size: int = 1024) -> float:
    """% of images with the same top-1 class under two independent random shifts (mean over passes)."""
    agree = []
    for p in range(passes):
        g = torch.Generator(device=x_u8.device).manual_seed(seed + p)
        offs = torch.randint(-max_shift, max_shift + 1, (4, len(x_u8)), generator=g, device=x_u8.device)
        a = predict(model, shift(x_u8, offs[0], offs[1], mode), prep, precision, batch_size).argmax(1)
        b = predict(model, shift(x_u8, offs[2], offs[3], mode), prep, precision, batch_size).argmax(1)
        agree.append((a == b).float().mean().item() * 100)
    return sum(agree) / len(agree)


def diagonal_stability(model, x_u8, y, prep, precision: str = "fp32", diag_max: int = 8,
                       batch_size: int = 1024) -> list[float]:
    """Mean probability of the true class for circular diagonal shifts 0..diag_max."""
    out = []
    for s in range(diag_max + 1):
        d = torch.full((len(x_u8),), s, device=x_u8.device)
        probs = predict(model, shift(x_u8, d, d, "circular"), prep, precision, batch_size).softmax(1)
        out.append(probs.gather(1, y[:, None]).mean().item())
    return out


def evaluate_shift(model, prep, precision, test_x, test_y, out_dir, logger, max_shift: int = 4,
                   passes: int = 5, diag_max: int = 8, max_images: int | None = None, eval_batch_size: int = 1024,
                   **_) -> dict[str, float]:
    """Evaluator hook for ``engine.loop.final_metrics``: consistency (circular, translate) + diagonal curve, in
    batches of ``trainer.eval_batch_size``.

    ``max_images`` evaluates the first N test images only (a compute budget; stated in the report).
    """
    if max_images:
        test_x, test_y = test_x[:max_images], test_y[:max_images]
    metrics = {f"consistency_{m}": consistency(model, test_x, prep, precision, max_shift, passes, m, seed=1000,
                                                batch_size=eval_batch_size) for m in ("circular", "translate")}
    curve = diagonal_stability(model, test_x, test_y, prep, precision, diag_max, eval_batch_size)
    path = Path(out_dir) / "diagonal_stability.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["shift", "p_correct"])
        w.writerows([s, f"{p:.6f}"] for s, p in enumerate(curve))
    logger.log_table("diagonal_stability", str(path))
    metrics["diag_p_correct_mean"] = sum(curve) / len(curve)
    return metrics
