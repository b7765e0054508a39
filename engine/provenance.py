"""Where, when and with what code a run ran: the hardware string, the date, and the segments of a resumed run.

A run that is stopped and resumed (a session or lease that ends, a preemption) trains in several *segments*,
possibly on other machines or code revisions. Each segment is recorded: ``from`` / ``to`` (positions as
``Progress.where`` words them, ``"start"`` for a fresh run), ``started`` / ``ended`` (UTC), its training time and
wall time (from the restored position to its last checkpoint: data loading and the final test pass are outside),
and the git commit, dirty flag, hardware, device and torch version it ran with. The checkpoint carries
the list, so a resumed run's record names every segment, not only the last one.
"""
from __future__ import annotations

import os
import platform
import time
from typing import Any

import torch

from engine import records


def now() -> str:
    """The UTC date and time as records write it."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


def machine_name() -> str:
    """``"<CPU model> (<n> cores)"``: how a record's ``hardware`` starts on this machine."""
    return f"{_cpu_name()} ({os.cpu_count()} cores)"


def _cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else the platform's machine name."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine() or platform.processor() or "unknown CPU"


def hardware(device: torch.device | None) -> str:
    """``"<CPU model> (<n> cores), <t> thread(s)[, <GPU name>]"``."""
    gpu = f", {torch.cuda.get_device_name(device)}" if device is not None and device.type == "cuda" else ""
    return f"{machine_name()}, {torch.get_num_threads()} thread(s){gpu}"


def environment(device: torch.device | None) -> dict[str, Any]:
    """The code and machine this process runs with (a segment's, and a job's bookkeeping)."""
    git = records.git_state()
    return {"git_commit": git["commit"], "git_dirty": git["dirty"], "hardware": hardware(device),
            "device": str(device), "torch": torch.__version__}

