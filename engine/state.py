"""What a checkpoint holds and how a run continues from it.

``Progress`` is the position of a run: finished epochs and their history, after a preemption the position
inside the interrupted epoch (its data order, step and running sums), and the segments the run trained in so
far (``engine.provenance``: a resumed run's code, hardware and times per segment). A checkpoint is
``training_state(...)``: weights, optimiser, schedule, every RNG, the progress, and the config it
belongs to (``config``: resolved; ``config_hash`` / ``training_config``: see ``engine.records``).
"""
from __future__ import annotations

import hashlib
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from engine import provenance, records


@dataclass
class EpochPosition:
    """Where a preempted epoch stopped: its batches of indices, the next step, the sums so far."""

    batches: torch.Tensor
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    elapsed_s: float = 0.0


@dataclass
class Progress:
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    train_time_s: float = 0.0
    images_seen: int = 0
    partial: EpochPosition | None = None
    segments: list[dict] = field(default_factory=list)
    resume_note: str | None = None  # what a resume could not restore exactly (``set_rng_state``); goes into the segment
    _base: tuple[float, float] = field(default=(0.0, 0.0), repr=False)  # trained_s(), clock: open segment's start

    def where(self) -> str:
        """The position in words, 1-based as the epoch log: "at epoch 76, step 75" inside an epoch (``partial``),
        "after epoch 75" between epochs. A stopped run and its resume name the same one."""
        return f"at epoch {self.epoch + 1}, step {self.partial.step}" if self.partial else f"after epoch {self.epoch}"

    def trained_s(self) -> float:
        """Training time so far, the stopped part of a preempted epoch included."""
        return self.train_time_s + (self.partial.elapsed_s if self.partial else 0.0)

    def open_segment(self, environment: dict[str, Any]) -> None:
        """Begin a segment (a fresh start or a resume) on this code and machine (``provenance.environment``)."""
        fresh = not self.epoch and not self.partial
        self._base = (self.trained_s(), time.perf_counter())
        self.segments.append({"from": "start" if fresh else self.where(), "to": None, "started": provenance.now(),
                              "ended": None, "train_time_s": 0.0, "wall_s": 0.0, **environment,
                              **({"note": self.resume_note} if self.resume_note else {})})

    def close_segment(self) -> None:
        """Bring the open segment up to now (before each checkpoint and at the end): a killed process loses
        only what its last checkpoint lost."""
        if self.segments:
            self.segments[-1].update(to=self.where(), ended=provenance.now(),
                                     train_time_s=self.trained_s() - self._base[0],
                                     wall_s=time.perf_counter() - self._base[1])


def rng_state(gen: torch.Generator) -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "data": gen.get_state(), "data_device": gen.device.type}


def set_rng_state(s: dict, gen: torch.Generator) -> str | None:
    """Restore every RNG; None, or a note when the data generator (augmentation draws, epoch orders) cannot be.

    That generator lives on the training device, and a CUDA generator's state (Philox) does not fit a CPU one
    (mt19937) nor the reverse: a checkpoint from a GPU lease that resumes on a CPU (or back) reseeds it from the
    saved state, so the same checkpoint always continues the same way. Weights, optimiser, schedule, the other
    RNGs and a preempted epoch's data order still restore exactly; only the later random draws differ from an
    uninterrupted run on the first device (which the two devices' generators never matched anyway).
    """
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])
    if s["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    saved = s.get("data_device")  # None in checkpoints written before the key: told apart by the state's size
    if s["data"].numel() == gen.get_state().numel() and saved in (None, gen.device.type):
        gen.set_state(s["data"])
        return None
    gen.manual_seed(int.from_bytes(hashlib.sha256(s["data"].numpy().tobytes()).digest()[:8], "little") >> 1)
    return (f"data RNG reseeded: the checkpoint's data generator ran on {saved or 'another device type'}, this "
            f"run trains on {gen.device.type} (augmentation draws differ from here on; all else restored exactly)")


def training_state(cfg: DictConfig, model, optimizer, scheduler, gen: torch.Generator, progress: Progress,
                   mean, std, wandb_id: str | None) -> dict[str, Any]:
    """Everything ``restore`` needs to continue bit-exactly, plus the config this run dir belongs to."""
    partial = asdict(progress.partial) if progress.partial is not None else None
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": rng_state(gen), "epoch": progress.epoch, "history": progress.history,
            "train_time_s": progress.train_time_s, "images_seen": progress.images_seen, "partial_epoch": partial,
            "segments": progress.segments,
            "wandb_id": wandb_id, "mean": mean, "std": std, "config": OmegaConf.to_container(cfg, resolve=True),
            "config_hash": records.config_hash(cfg), "training_config": records.training_config(cfg)}


def restore(state: dict, model, optimizer, scheduler, gen: torch.Generator) -> Progress:
    """Load ``state`` into the training objects; return where the run stopped."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    note = set_rng_state(state["rng"], gen)
    partial = state.get("partial_epoch")
    return Progress(state["epoch"], state["history"], state["train_time_s"], state["images_seen"],
                    EpochPosition(**partial) if partial else None, list(state.get("segments", [])), note)
