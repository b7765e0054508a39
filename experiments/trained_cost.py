"""Measured cost of a trained model: training-step throughput and peak activation memory.

MACs and params come from ``models.complexity.profile`` (in every run's metrics); this adds what
the papers' cost claims are about in practice: wall-clock and memory, measured in one process.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from engine.inference import autocast


def random_batch(batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A random channels_last 3x32x32 batch and its labels: what the step benchmarks feed ``train_step_seconds``
    (``scripts/benchmark_models.py``, ``scripts/profile_step.py``)."""
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, 10, (batch,), device=device)


def train_step_seconds(model, x, y, precision: str) -> float:
    """Wall time of one forward + backward step (gradients dropped): the one step-timing harness, used by
    ``measure_cost`` (per trained run) and ``scripts/benchmark_models.py`` (interleaved variants)."""
    device = x.device
    t = time.perf_counter()
    with autocast(device, precision):
        loss = F.cross_entropy(model(x).float(), y)
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t


def measure_cost(model, prep, precision, test_x, batch_size: int = 128, steps: int = 5, **_) -> dict[str, float]:
    """Forward+backward img/s on ``batch_size`` test images and the peak memory of one step.

    Memory: ``torch.cuda.max_memory_allocated`` on GPU; on CPU the peak of Python-tracked
    allocations is not torch's, so we report the summed size of saved activations instead
    (``torch.autograd.graph.saved_tensors_hooks``), which is what octave/involution change.
    """
    device = next(model.parameters()).device
    x = prep(test_x[:batch_size])
    y = torch.zeros(len(x), dtype=torch.long, device=device)
    buffers = {k: v.clone() for k, v in model.named_buffers()}  # BN running stats: restored at the end
    model.train()
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(device, precision):
        loss = F.cross_entropy(model(x).float(), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    times = [train_step_seconds(model, x, y, precision) for _ in range(steps)]
    with torch.no_grad():
        for k, v in model.named_buffers():
            v.copy_(buffers[k])
    model.eval()
    return {"step_img_s": len(x) / sorted(times)[len(times) // 2], "saved_activation_mb": saved[0] / 2**20}
