"""Fashion-MNIST from idx files (optionally gzipped), parsed and validated here.

``fashion_mnist(root)`` looks in ``root`` (flat or torchvision's ``FashionMNIST/raw``), then the
Debian package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist), then downloads with
torchvision.
"""
from __future__ import annotations

import gzip
import logging
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from .core import DOWNLOAD_TIMEOUT_S, CorruptDataError, RawData, _network_timeout, _short, _unavailable

log = logging.getLogger(__name__)

__all__ = ["fashion_mnist", "DEBIAN_FASHION_MNIST", "FASHION_MNIST_CLASSES"]

# Where the Debian package dataset-fashion-mnist installs its gzipped idx files. Module-level so tests
# (and unusual installs) can point it elsewhere: patch engine.data.idx.DEBIAN_FASHION_MNIST, not the
# read-only re-export engine.data.DEBIAN_FASHION_MNIST.
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
_FASHION_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


# --------------------------------------------------------------------------------------------------
# Fashion-MNIST (idx files)
# --------------------------------------------------------------------------------------------------
def _read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Parse an idx file (optionally gzipped) of unsigned bytes; validate magic, dims and size."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                buf = fh.read()
        else:
            buf = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise CorruptDataError(path, f"cannot be read/decompressed ({_short(err)})") from err
    if len(buf) < 4:
        raise CorruptDataError(path, f"only {len(buf)} bytes, too short for an idx header")
    zero0, zero1, dtype_code, ndim = buf[0], buf[1], buf[2], buf[3]
    if zero0 != 0 or zero1 != 0 or dtype_code != 0x08:
        raise CorruptDataError(path, f"bad idx magic number 0x{buf[:4].hex()} (expected 0x000008{expected_ndim:02x}, "
                                     f"unsigned-byte data)")
    if ndim != expected_ndim:
        raise CorruptDataError(path, f"idx file has {ndim} dimensions, expected {expected_ndim}")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise CorruptDataError(path, "truncated inside the idx header")
    dims = [int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = math.prod(dims)
    if len(buf) - header != expected:
        raise CorruptDataError(path, f"header says dims {dims} = {expected} bytes of data but the file holds "
                                     f"{len(buf) - header} (truncated or padded)")
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx_files(directory: Path) -> tuple[dict[str, Path] | None, str]:
    """The four Fashion-MNIST idx files in ``directory`` (raw preferred over .gz), or why not."""
    if not directory.is_dir():
        return None, "no such directory"
    found, missing = {}, []
    for key, name in _FASHION_FILES.items():
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            missing.append(f"{name}[.gz]")
    if missing:
        return None, f"missing {', '.join(missing)}"
    return found, ""


def _load_idx_set(files: dict[str, Path]) -> RawData:
    arrays = {k: _read_idx(p, 3 if k.endswith("_x") else 1) for k, p in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if len(x) != len(y):
            raise CorruptDataError(files[f"{split}_y"], f"{len(y)} labels for {len(x)} images in "
                                                        f"{files[f'{split}_x'].name}")
        if len(y) and int(y.max()) >= len(FASHION_MNIST_CLASSES):
            raise CorruptDataError(files[f"{split}_y"], f"label {int(y.max())} outside 0..9")
    return RawData(
        train_x=torch.from_numpy(arrays["train_x"].copy()).unsqueeze(1),
        train_y=torch.from_numpy(arrays["train_y"].astype(np.int64)),
        test_x=torch.from_numpy(arrays["test_x"].copy()).unsqueeze(1),
        test_y=torch.from_numpy(arrays["test_y"].astype(np.int64)),
        classes=list(FASHION_MNIST_CLASSES),
    )


def fashion_mnist(root: str, download: bool = True) -> RawData:
    """Fashion-MNIST: 60000 + 10000 grayscale 28x28 images, ``(N, 1, 28, 28)`` uint8.

    Looks for the four idx files (``train-images-idx3-ubyte[.gz]`` etc.) in ``root``, then in
    ``root/FashionMNIST/raw`` (torchvision's layout), then in ``DEBIAN_FASHION_MNIST`` (Debian package
    ``dataset-fashion-mnist``), and finally downloads them with torchvision into ``root``.
    The first directory holding all four files is used; a corrupt file there raises
    :class:`CorruptDataError` rather than silently falling back to another copy.
    """
    root_path = Path(root).expanduser()
    attempts: list[tuple[str, str]] = []
    for directory in (root_path, root_path / "FashionMNIST" / "raw", Path(DEBIAN_FASHION_MNIST)):
        files, why = _find_idx_files(directory)
        if files is not None:
            log.info("Fashion-MNIST: reading idx files from %s", directory)
            return _load_idx_set(files)
        attempts.append((str(directory), why))
    if not download:
        attempts.append(("download", "disabled (download=False)"))
    else:
        try:
            from torchvision.datasets import FashionMNIST

            log.info("Fashion-MNIST: downloading with torchvision into %s", root_path)
            with _network_timeout(DOWNLOAD_TIMEOUT_S):
                FashionMNIST(str(root_path), train=True, download=True)
        except Exception as err:  # noqa: BLE001 - any failure is reported with the other attempts
            attempts.append((f"torchvision download into {root_path / 'FashionMNIST' / 'raw'}", _short(err)))
        else:
            files, why = _find_idx_files(root_path / "FashionMNIST" / "raw")
            if files is not None:
                return _load_idx_set(files)
            attempts.append(("torchvision download", f"finished but {why}"))
    raise _unavailable(
        "Fashion-MNIST", str(root), attempts,
        extra="Install the Debian copy with `apt-get install -y dataset-fashion-mnist`, or copy the four "
              "idx files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
              "t10k-labels-idx1-ubyte.gz) into data.root. ",
    )
