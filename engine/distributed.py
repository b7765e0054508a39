"""Minimal ``torchrun`` support: DDP when WORLD_SIZE > 1 (gloo on CPU, NCCL on CUDA).

Only rank 0 logs (console, ``train.log``, wandb) and writes files; ``quiet_other_ranks`` silences the
rest. ``data.batch_size`` is the global batch: each step every rank trains on ``batch_size / world``
images of one shared permutation (``shard``). Train metrics are averaged over ranks before logging
(``scaled_all_reduce``, as in pycls).
"""
from __future__ import annotations

import logging
import os
import sys

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


def quiet_other_ranks() -> None:
    """On ranks > 0: drop every log handler (console, Hydra's train.log) and keep errors on stderr."""
    if is_main():
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    errors = logging.StreamHandler(sys.stderr)
    errors.setLevel(logging.ERROR)
    errors.setFormatter(logging.Formatter(f"[rank {rank()}] %(levelname)s %(name)s: %(message)s"))
    root.addHandler(errors)


def shard(batch_idx: torch.Tensor) -> torch.Tensor:
    """This rank's part of one global batch of indices: every ``world``-th, starting at ``rank``."""
    return batch_idx[rank()::world_size()]


def scaled_all_reduce(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The mean over ranks of each tensor (pycls ``scaled_all_reduce``); unchanged for one process."""
    if world_size() == 1 or not td.is_initialized():
        return tensors
    for t in tensors:
        td.all_reduce(t, op=td.ReduceOp.SUM)
    return [t / world_size() for t in tensors]


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    t = torch.tensor([float(flag)], device=device)
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return bool(t.item())


def broadcast_str(value: str) -> str:
    """Rank 0's ``value`` on every rank (e.g. the run dir, whose timestamp may differ by a second)."""
    if world_size() == 1 or not td.is_initialized():
        return value
    box = [value]
    td.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if world_size() == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def cleanup() -> None:
    if td.is_initialized():
        td.destroy_process_group()
