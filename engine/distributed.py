"""Minimal ``torchrun`` support: DDP when WORLD_SIZE > 1 (gloo on CPU, NCCL on CUDA); rank 0 logs."""
from __future__ import annotations

import os

import torch
import torch.distributed as td


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


def rank() -> int:
    return int(os.environ.get("RANK", 0))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    return rank() == 0


def init() -> None:
    """Join the process group started by torchrun (no-op for a single process)."""
    if world_size() > 1 and not td.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        td.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if world_size() == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def cleanup() -> None:
    if td.is_initialized():
        td.destroy_process_group()
