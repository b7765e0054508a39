"""The in-memory dataset container, the data errors and split/statistics helpers shared by every loader.

Every loader returns a :class:`RawData`: ``uint8`` images in ``(N, C, H, W)`` and ``int64`` labels
for the train and test splits, plus the class names. There is no ``DataLoader`` and no per-sample PIL
transform: batching and augmentation work on these tensors directly (``engine/augment.py``).

Failures are explicit: :class:`DataUnavailableError` when no copy of the data can be found or
fetched (its message names ``data.root``, every place tried and the alternatives), and
:class:`CorruptDataError` (a subclass) naming the file that is truncated or malformed.
"""
from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from typing import Iterator

import torch

__all__ = ["RawData", "DataUnavailableError", "CorruptDataError", "split_train_val", "channel_stats",
           "DOWNLOAD_TIMEOUT_S"]

# Seconds a single network operation may block while downloading (torchvision sets no timeout).
DOWNLOAD_TIMEOUT_S = 30.0

_ALTERNATIVES = (
    "Alternatives: point data.root at a directory that holds the files, set data=synthetic for a "
    "procedurally generated stand-in that needs no files, or set data=image_folder with data.root "
    "pointing at a train/<class>/*.jpg + test/<class>/*.jpg tree (scripts/prepare_cifar10_jpeg.sh "
    "builds one for CIFAR-10 from the cifar10-jpeg.tar.gz in $CIFAR10_JPEG_TARBALL or ../shared/data)."
)


# --------------------------------------------------------------------------------------------------
# Container and errors
# --------------------------------------------------------------------------------------------------
@dataclass
class RawData:
    """A dataset held in memory: uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)`` per split.

    Validated on construction: dtypes, ranks, matching lengths, identical ``(C, H, W)`` in both splits
    and labels in ``[0, len(classes))``.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        self.classes = [str(c) for c in self.classes]
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(f"RawData.{split}_x must be a uint8 tensor (N, C, H, W), got "
                                 f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")
            if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() != 1:
                raise ValueError(f"RawData.{split}_y must be an int64 tensor (N,), got "
                                 f"{getattr(y, 'dtype', type(y))} {tuple(getattr(y, 'shape', ()))}")
            if len(x) != len(y):
                raise ValueError(f"RawData.{split}: {len(x)} images but {len(y)} labels")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
                raise ValueError(f"RawData.{split}_y has labels outside [0, {len(self.classes)})")
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise ValueError(f"train images {tuple(self.train_x.shape[1:])} and test images "
                             f"{tuple(self.test_x.shape[1:])} differ in (C, H, W)")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (f"RawData(train={tuple(self.train_x.shape)}, test={tuple(self.test_x.shape)}, "
                f"classes={len(self.classes)})")


class DataUnavailableError(RuntimeError):
    """No copy of the dataset could be found or fetched. The message says where we looked."""


class CorruptDataError(DataUnavailableError):
    """A dataset file exists but is truncated or malformed. The message names the file."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"corrupt dataset file {self.path}: {problem}. Delete or replace it "
                         f"(re-extract or re-download the dataset).")


def _unavailable(dataset: str, root: str, attempts: list[tuple[str, str]], extra: str = "") -> DataUnavailableError:
    tried = "; ".join(f"({i}) {where}: {why}" for i, (where, why) in enumerate(attempts, 1))
    return DataUnavailableError(
        f"{dataset} is not available (data.root={root!r}). Tried {tried}. {extra}{_ALTERNATIVES}"
    )


def _short(err: BaseException, limit: int = 240) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    text = f"{type(err).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _network_timeout(seconds: float) -> Iterator[None]:
    """Bound every socket operation of a download (urllib, as used by torchvision, has no timeout)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
def split_train_val(raw: RawData, val_size: int, seed: int):
    """Carve a stratified validation split of ``val_size`` images out of ``raw``'s train split.

    Each class gives ``val_size * n_class / n_train`` images (largest-remainder rounding, so the total is
    exact), chosen at random with a ``torch.Generator`` seeded by ``seed``. Both parts keep the original
    order. Returns ``((train_x, train_y), (val_x, val_y))``; ``val_size=0`` gives an empty validation
    split and the train split unchanged.
    """
    n = len(raw.train_y)
    if isinstance(val_size, bool) or not isinstance(val_size, int) or val_size < 0 or val_size >= n:
        raise ValueError(f"data.val_size must be an integer in [0, {n}) (the training set has {n} images), "
                         f"got {val_size!r}")
    if val_size == 0:
        return (raw.train_x, raw.train_y), (raw.train_x[:0], raw.train_y[:0])
    counts = torch.bincount(raw.train_y, minlength=raw.num_classes)
    exact = counts.double() * val_size / n
    quota = exact.floor().long()
    short = val_size - int(quota.sum())
    if short:
        order = sorted(range(len(counts)), key=lambda c: (-(exact[c] - quota[c]).item(), c))
        for c in order[:short]:
            quota[c] += 1
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    by_class = perm[torch.argsort(raw.train_y[perm], stable=True)]   # shuffled within each class
    starts = torch.cumsum(counts, 0) - counts
    is_val = torch.zeros(n, dtype=torch.bool)
    for c in range(len(counts)):
        is_val[by_class[starts[c]: starts[c] + quota[c]]] = True
    val_idx, train_idx = is_val.nonzero().squeeze(1), (~is_val).nonzero().squeeze(1)
    return (raw.train_x[train_idx], raw.train_y[train_idx]), (raw.train_x[val_idx], raw.train_y[val_idx])


def channel_stats(x_uint8: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std of uint8 images ``(N, C, H, W)``, in [0, 1] units.

    Accumulates in float64 over chunks, so a 50000-image set needs no full float copy. Returns two
    float32 tensors of shape ``(C,)``.
    """
    if x_uint8.dtype != torch.uint8 or x_uint8.dim() != 4 or len(x_uint8) == 0:
        raise ValueError(f"channel_stats expects a non-empty uint8 tensor (N, C, H, W), got "
                         f"{x_uint8.dtype} {tuple(x_uint8.shape)}")
    c = x_uint8.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, len(x_uint8), chunk):
        part = x_uint8[start:start + chunk].to(torch.float64).transpose(0, 1).reshape(c, -1)
        total += part.sum(1)
        total_sq += (part * part).sum(1)
    count = x_uint8.numel() / c
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0)
    return (mean / 255).float(), (var.sqrt() / 255).float()
