"""Atomic checkpoint / JSON writes and loading a trained model back from ``last.pt``."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

TMP_SUFFIX = ".tmp"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (unreadable, truncated, not a training state)."""


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
        os.replace(tmp, path)  # atomic on POSIX: readers see the old or the new file, never half
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temp file in the same folder, then rename over ``path``."""
    _atomic(Path(path), lambda f: torch.save(obj, f))


def write_json_atomic(obj: dict, path: str | os.PathLike) -> None:
    _atomic(Path(path), lambda f: f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete temp files a killed ``save_atomic(obj, path)`` left next to ``path``; return them."""
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*{TMP_SUFFIX}"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a training state written by ``save_atomic``; ``CheckpointError`` (one line) if it is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, pickle error, ...
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"checkpoint {path} is not a training state of this project (keys model, config)")
    return state


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else ""


def load_model(path: str | os.PathLike) -> torch.nn.Module:
    """Rebuild the network a run trained from its ``checkpoints/last.pt`` (eval mode, CPU, fp32)."""
    return model_from_state(load_checkpoint(path))


def model_from_state(state: dict) -> torch.nn.Module:
    """The network of an already-loaded training state (see ``load_model``)."""
    from hydra.utils import instantiate

    model = instantiate(state["config"]["model"])
    model.load_state_dict(state["model"])
    return model.eval()
