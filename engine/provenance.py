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
    """``"<CPU model>[ [<widest vector ISA>]] (<n> cores)"``: how a record's ``hardware`` starts on this machine.

    The ISA tells apart CPUs that report one model name (a virtual "AMD EPYC" with AVX2 only or with AVX-512 bf16
    trains at different speeds); records written before it was added name the model only."""
    isa = _vector_isa()
    return f"{_cpu_name()}{f' [{isa}]' if isa else ''} ({os.cpu_count()} cores)"


def _cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else the platform's machine name."""
    return _cpuinfo("model name") or platform.machine() or platform.processor() or "unknown CPU"


CPUINFO = "/proc/cpuinfo"
ISA_FLAGS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2", "asimd")  # widest first; /proc/cpuinfo flag names


def _vector_isa() -> str:
    """The widest of ``ISA_FLAGS`` this CPU has (Linux), else ""."""
    flags = set((_cpuinfo("flags") or _cpuinfo("Features") or "").split())
    return next((f for f in ISA_FLAGS if f in flags), "")


def _cpuinfo(key: str) -> str | None:
    """The first ``key`` line's value in /proc/cpuinfo, None where there is none."""
    try:
        with open(CPUINFO) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.split(":", 1)[0].strip() == key), None)
    except OSError:
        return None


def hardware(device: torch.device | None) -> str:
    """``"<CPU model> (<n> cores), <t> thread(s)[, <GPU name>]"``."""
    gpu = f", {torch.cuda.get_device_name(device)}" if device is not None and device.type == "cuda" else ""
    return f"{machine_name()}, {torch.get_num_threads()} thread(s){gpu}"


def environment(device: torch.device | None) -> dict[str, Any]:
    """The code and machine this process runs with (a segment's, and a job's bookkeeping)."""
    git = records.git_state()
    return {"git_commit": git["commit"], "git_dirty": git["dirty"], "hardware": hardware(device),
            "device": str(device), "torch": torch.__version__}

