"""Preemption: SIGTERM (SLURM time limit / preemption, ``kill``), SIGUSR1 (``sbatch --signal``) and Ctrl-C
(SIGINT) stop a run at a safe point instead of killing it. A second Ctrl-C stops at once (plain
``KeyboardInterrupt``; the checkpoint of the last finished epoch is kept).

While ``fit`` trains, a signal only sets a flag; the loop checks it after every optimiser step, writes a
checkpoint of the exact position (epoch, step, data order, RNG) and raises :class:`Preempted`. Outside
the loop (data loading, probes) the handler raises at once. ``engine.job`` then writes metrics.json with
``status: interrupted``, finishes the wandb run with exit code 1 and the process exits with 128 + the
signal number; rerunning the same command resumes from the checkpoint.
"""
from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager

import torch

from engine import distributed as dist

log = logging.getLogger(__name__)
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGINT") if hasattr(signal, name))


def install_handlers(signals, handler) -> dict[int, object]:
    """Install ``handler`` for ``signals`` and return the handlers it replaced. Only the main thread can (elsewhere:
    none installed); a SIGINT ignored at start (``cmd &`` in a script) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in signals
            if not (s == signal.SIGINT and signal.getsignal(s) is signal.SIG_IGN)}


class Preempted(KeyboardInterrupt):
    """The run was stopped by a signal; its state is saved where it could be (status ``interrupted``)."""

    def __init__(self, signum: int, where: str = ""):
        self.signum = signum
        at = f" {where}" if where else ""
        super().__init__(f"stopped by {signal.Signals(signum).name}{at}; rerun the same command to resume")


class Preemption:
    """Signal handlers for one job; ``deferred()`` marks the span in which the loop reaches safe points."""

    def __init__(self):
        self.signum: int | None = None
        self._deferred = False
        self._previous: dict[int, object] = {}

    def install(self) -> "Preemption":
        self._previous = install_handlers(SIGNALS, self._handle)
        return self

    def uninstall(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:  # Ctrl-C twice: do not wait for the step
            raise KeyboardInterrupt("Ctrl-C twice: stopped at once")
        self.signum = self.signum or signum  # the first signal is the reason (run_grid forwards SIGTERM after Ctrl-C)
        if not self._deferred:
            raise Preempted(signum)
        log.warning("received %s: stopping after the current step", signal.Signals(signum).name)

    @contextmanager
    def deferred(self):
        self._deferred = True
        try:
            if self.signum is not None:  # arrived while it could not be deferred
                raise Preempted(self.signum)
            yield self
        finally:
            self._deferred = False

    def requested(self, device: torch.device) -> bool:
        """Whether any rank got a signal (all ranks agree, so they stop at the same step)."""
        flag = self.signum is not None
        if dist.world_size() > 1:
            flag = dist.any_rank(flag, device)
        return flag

    def stop(self, where: str) -> None:
        raise Preempted(self.signum or signal.SIGTERM, where)


NONE = Preemption()  # never installed: for callers of ``fit`` outside a job (tests, notebooks)
