"""Inference helpers shared by training and the probes: batch preparation, precision, predict, evaluate.

Conventions: images stay uint8 ``(N, C, H, W)`` on the device until ``Batches`` normalises them;
``precision`` is ``fp32`` or ``bf16`` (autocast; BatchNorm and the loss stay in fp32); ``auto`` is
resolved once per run by ``resolve_precision`` before anything reads it; so is an ``auto`` evaluation batch
size (``resolve_eval_batch_size``).
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F

from engine.augment import BatchAugment


class Batches:
    """Normalises uint8 images on the device and applies batched augmentation."""

    def __init__(self, mean, std, device: torch.device, channels_last: bool):
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1) * 255
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, x_u8: torch.Tensor, aug: BatchAugment | None = None, gen=None) -> torch.Tensor:
        if aug is not None:
            x_u8 = aug.geometric(x_u8, gen)
        x = ((x_u8.float() - self.mean) / self.std).contiguous(memory_format=self.fmt)
        return aug.erase(x, gen) if aug is not None else x


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (CUDA with bf16; a CPU with AVX-512 bf16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where it is native, else ``fp32`` (emulated bf16 is ~10x slower than fp32 on an
    AVX2-only CPU); an explicit ``bf16`` or ``fp32`` is returned as asked."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


EVAL_BATCH_SIZE = {"cuda": 1024, "cpu": 128}  # what trainer.eval_batch_size=auto means per device type


def resolve_eval_batch_size(value: int | str, device: torch.device) -> int:
    """``auto`` -> 1024 on CUDA, 128 on a CPU (``python scripts/benchmark_eval.py``: on a 2-core AVX2 CPU,
    1-thread ResNet-20 inference at batch 128 runs at about 2x the img/s of batch 1024); a number is returned as asked.
    Inference is per image in eval mode, so the batch size changes speed only."""
    return EVAL_BATCH_SIZE.get(device.type, 128) if value == "auto" else int(value)


def autocast(device: torch.device, precision: str):
    """bf16 autocast on ``device`` for ``precision=bf16``; a no-op context for ``fp32``."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def predict(model, x_u8, prep: Batches, precision: str, batch_size: int = 1024) -> torch.Tensor:
    """fp32 logits of an uint8 image tensor (already on the model's device), model in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    outs = []
    for i in range(0, len(x_u8), batch_size):
        with autocast(device, precision):
            outs.append(model(prep(x_u8[i:i + batch_size])).float())
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate(model, x_u8, y, prep, precision, batch_size=1024) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy in percent); NaNs for an empty split."""
    if len(x_u8) == 0:
        return float("nan"), float("nan")
    logits = predict(model, x_u8, prep, precision, batch_size)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item() * 100
