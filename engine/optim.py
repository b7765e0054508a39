"""Optimiser parameter groups and LR schedules (stepped once per optimisation step).

Schedule builders share one signature, ``(optimizer, total_steps, steps_per_epoch, **cfg)``,
so ``configs/sched/*.yaml`` are ``_partial_`` and the loop completes them.
"""
from __future__ import annotations

import math

from torch import nn
from torch.optim import lr_scheduler as lrs


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights of convs/linears decay; BN/GroupNorm params and biases do not."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _with_warmup(optimizer, main, warmup_steps: int):
    if warmup_steps <= 0:
        return main
    warm = lrs.LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup_steps)
    return lrs.SequentialLR(optimizer, [warm, main], milestones=[warmup_steps])


def cosine(optimizer, total_steps: int, steps_per_epoch: int, warmup_epochs: float = 0.0, eta_min: float = 0.0):
    """Linear warm-up then cosine decay to ``eta_min``."""
    warm = int(warmup_epochs * steps_per_epoch)
    main = lrs.CosineAnnealingLR(optimizer, T_max=max(total_steps - warm, 1), eta_min=eta_min)
    return _with_warmup(optimizer, main, warm)


def onecycle(optimizer, total_steps: int, steps_per_epoch: int, pct_start: float = 0.25,
             div_factor: float = 25.0, final_div_factor: float = 1e4, anneal_strategy: str = "linear"):
    """torch's OneCycleLR peaking at each group's configured lr."""
    max_lr = [g["lr"] for g in optimizer.param_groups]
    # +1: the constructor counts as step 0 and the loop steps total_steps times; tiny runs need
    # at least one step in each phase, so very short schedules end before the final annealing
    total = max(total_steps + 1, math.ceil(2 / pct_start) + 1)
    return lrs.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total, pct_start=pct_start,
                          div_factor=div_factor, final_div_factor=final_div_factor,
                          anneal_strategy=anneal_strategy)


def step(optimizer, total_steps: int, steps_per_epoch: int, milestones: tuple[float, ...] = (0.5, 0.75),
         gamma: float = 0.1, warmup_epochs: float = 0.0):
    """Step decay by ``gamma`` at fractions ``milestones`` of training (0.5/0.75 = the CIFAR ResNet recipe)."""
    warm = int(warmup_epochs * steps_per_epoch)
    marks = sorted({max(int(m * total_steps) - warm, 1) for m in milestones})
    return _with_warmup(optimizer, lrs.MultiStepLR(optimizer, milestones=marks, gamma=gamma), warm)
