"""Datasets decoded once into uint8 tensors held in memory (airbench style).

Every loader returns a :class:`RawData`: ``uint8`` images in ``(N, C, H, W)`` and ``int64`` labels
for the train and test splits, plus the class names. There is no ``DataLoader`` and no per-sample PIL
transform: batching and augmentation work on these tensors directly (``engine/augment.py``).

Loaders
  ``fashion_mnist(root)``  idx files in ``root`` (flat or torchvision's ``FashionMNIST/raw``), then the
                           Debian package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist),
                           then a torchvision download.
  ``cifar10(root)`` / ``cifar100(root)``  the extracted python pickles (``cifar-10-batches-py`` /
                           ``cifar-100-python``), read here with a restricted unpickler; torchvision only
                           downloads and extracts the official tarball when they are absent.
  ``image_folder(root)``   ``root/{train,test}/<class>/*.{png,jpg,jpeg}``, decoded once with
                           ``torchvision.io`` and cached as ``root/.cache/tensors-<hash>.pt``.
  ``synthetic(...)``       a procedurally generated, class-structured stand-in for offline work.

Failures are explicit: :class:`DataUnavailableError` when no copy of the data can be found or
fetched (its message names ``data.root``, every place tried and the alternatives), and
:class:`CorruptDataError` (a subclass) naming the file that is truncated or malformed.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import math
import os
import pickle
import socket
import time
import uuid
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = [
    "RawData",
    "DataUnavailableError",
    "CorruptDataError",
    "fashion_mnist",
    "cifar10",
    "cifar100",
    "image_folder",
    "synthetic",
    "split_train_val",
    "channel_stats",
]

# Where the Debian package dataset-fashion-mnist installs its gzipped idx files. Module-level so tests
# (and unusual installs) can point it elsewhere.
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
# Seconds a single network operation may block while downloading (torchvision sets no timeout).
DOWNLOAD_TIMEOUT_S = 30.0

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
_ALTERNATIVES = (
    "Alternatives: point data.root at a directory that holds the files, set data=synthetic for a "
    "procedurally generated stand-in that needs no files, or set data=image_folder with data.root "
    "pointing at a train/<class>/*.jpg + test/<class>/*.jpg tree (scripts/prepare_cifar10_jpeg.sh "
    "builds one for CIFAR-10 from /work/shared/data/cifar10-jpeg.tar.gz)."
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


# --------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python pickles)
# --------------------------------------------------------------------------------------------------
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR batches: builtins plus numpy array reconstruction, nothing else.

    The official files are plain dicts of lists, strings and one numpy array; refusing every other
    global keeps a tampered file in a shared data directory from running code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: D401
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR pickle")


def _load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    except OSError as err:
        raise CorruptDataError(path, f"cannot be read ({_short(err)})") from err
    except Exception as err:  # noqa: BLE001 - UnpicklingError, EOFError, ValueError, ... all mean corrupt
        raise CorruptDataError(path, f"is not a valid CIFAR pickle ({_short(err)})") from err
    if not isinstance(obj, dict):
        raise CorruptDataError(path, f"unpickled to {type(obj).__name__}, expected a dict")
    # Python-2 pickles load with str keys under encoding='latin1'; files written by Python 3 with bytes keys.
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _cifar_batch(path: Path, label_key: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    entry = _load_pickle(path)
    if "data" not in entry or label_key not in entry:
        raise CorruptDataError(path, f"keys {sorted(map(str, entry))} lack 'data' and/or {label_key!r}")
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise CorruptDataError(path, f"'data' is {type(data).__name__} {getattr(data, 'dtype', '')}, expected uint8 ndarray")
    if data.ndim == 2 and data.shape[1] == 3 * 32 * 32:
        data = data.reshape(-1, 3, 32, 32)
    elif not (data.ndim == 4 and data.shape[1:] == (3, 32, 32)):
        raise CorruptDataError(path, f"'data' has shape {data.shape}, expected (N, 3072)")
    try:
        labels = np.asarray(entry[label_key], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise CorruptDataError(path, f"{label_key!r} is not a list of integers") from err
    if len(labels) != len(data):
        raise CorruptDataError(path, f"{len(labels)} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise CorruptDataError(path, f"labels outside 0..{num_classes - 1}")
    return torch.from_numpy(np.ascontiguousarray(data)), torch.from_numpy(labels)


def _cifar(root: str, download: bool, *, name: str, tv_cls_name: str, num_classes: int, label_key: str,
           meta_key: str) -> RawData:
    from torchvision import datasets as tv_datasets

    tv_cls = getattr(tv_datasets, tv_cls_name)
    base_folder: str = tv_cls.base_folder
    train_files = [f for f, _ in tv_cls.train_list]
    test_files = [f for f, _ in tv_cls.test_list]
    meta_file: str = tv_cls.meta["filename"]
    needed = train_files + test_files + [meta_file]

    root_path = Path(root).expanduser()
    attempts: list[tuple[str, str]] = []

    def locate(record: bool) -> Path | None:
        for directory in (root_path / base_folder, root_path):  # also accept root = the extracted dir
            if not directory.is_dir():
                why = "no such directory"
            else:
                missing = [f for f in needed if not (directory / f).is_file()]
                if not missing:
                    return directory
                why = f"missing {', '.join(missing)}"
            if record:
                attempts.append((str(directory), why))
        return None

    directory = locate(record=True)
    if directory is None:
        from torchvision.datasets import utils as tv_utils

        archive = root_path / tv_cls.filename
        fetched = False
        if archive.is_file():
            if not tv_utils.check_integrity(str(archive), tv_cls.tgz_md5):
                raise CorruptDataError(archive, "md5 checksum does not match the official archive")
            try:
                log.info("%s: extracting %s", name, archive)
                tv_utils.extract_archive(str(archive), str(root_path))
                fetched = True
            except Exception as err:  # noqa: BLE001
                raise CorruptDataError(archive, f"cannot be extracted ({_short(err)})") from err
        elif not download:
            attempts.append(("download", "disabled (download=False)"))
        else:
            try:
                log.info("%s: downloading %s into %s", name, tv_cls.url, root_path)
                with _network_timeout(DOWNLOAD_TIMEOUT_S):
                    tv_utils.download_and_extract_archive(tv_cls.url, download_root=str(root_path),
                                                          filename=tv_cls.filename, md5=tv_cls.tgz_md5)
                fetched = True
            except Exception as err:  # noqa: BLE001 - reported with the other attempts
                attempts.append((f"download of {tv_cls.url}", _short(err)))
        if fetched:
            directory = locate(record=False)
            if directory is None:
                attempts.append((str(archive), f"extracted, but {root_path / base_folder} is incomplete"))
    if directory is None:
        raise _unavailable(name, str(root), attempts,
                           extra=f"Place the extracted {base_folder}/ directory (or {tv_cls.filename}) in data.root. ")

    xs, ys = zip(*(_cifar_batch(directory / f, label_key, num_classes) for f in train_files))
    test_x, test_y = zip(*(_cifar_batch(directory / f, label_key, num_classes) for f in test_files))
    meta = _load_pickle(directory / meta_file)
    classes = meta.get(meta_key)
    if not isinstance(classes, list) or len(classes) != num_classes:
        raise CorruptDataError(directory / meta_file, f"{meta_key!r} should list {num_classes} class names")
    classes = [c.decode("latin1") if isinstance(c, bytes) else str(c) for c in classes]
    return RawData(torch.cat(xs), torch.cat(ys), torch.cat(test_x), torch.cat(test_y), classes)


def cifar10(root: str, download: bool = True) -> RawData:
    """CIFAR-10: 50000 + 10000 colour 32x32 images, ``(N, 3, 32, 32)`` uint8, 10 classes.

    Reads ``root/cifar-10-batches-py`` (``data_batch_1..5``, ``test_batch``, ``batches.meta``; ``root``
    itself may be that directory). When absent, extracts ``root/cifar-10-python.tar.gz`` or downloads
    it with torchvision (official URL and md5). File contents are validated (shapes, dtypes, label
    ranges) rather than md5-checked, so re-packed copies load too.
    """
    return _cifar(root, download, name="CIFAR-10", tv_cls_name="CIFAR10", num_classes=10,
                  label_key="labels", meta_key="label_names")


def cifar100(root: str, download: bool = True) -> RawData:
    """CIFAR-100 (fine labels): 50000 + 10000 colour 32x32 images, 100 classes.

    Reads ``root/cifar-100-python`` (``train``, ``test``, ``meta``); otherwise as :func:`cifar10`.
    """
    return _cifar(root, download, name="CIFAR-100", tv_cls_name="CIFAR100", num_classes=100,
                  label_key="fine_labels", meta_key="fine_label_names")


# --------------------------------------------------------------------------------------------------
# Image folder (decoded once, cached as a tensor file)
# --------------------------------------------------------------------------------------------------
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_CACHE_VERSION = 1
_JPEG_BATCH = 4096


def _list_split(split_dir: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    files, labels = [], []
    for label, cls in enumerate(classes):
        with os.scandir(split_dir / cls) as it:
            names = sorted(e.name for e in it
                           if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(IMAGE_EXTENSIONS))
        if not names:
            log.warning("image_folder: class %r has no images in %s", cls, split_dir)
        files.extend(split_dir / cls / n for n in names)
        labels.extend([label] * len(names))
    return files, labels


def _manifest_hash(root: Path, files: list[Path]) -> str:
    h = hashlib.sha256(f"image_folder-v{_CACHE_VERSION}".encode())
    for f in files:
        st = f.stat()
        h.update(json.dumps([f.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns]).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def _decode_files(files: list[Path]) -> list[torch.Tensor]:
    """Decode every file (UNCHANGED channels): JPEGs in batches, PNGs one by one."""
    # torchvision 0.29 deprecates its image codecs (in favour of torchcodec, not installed here) and
    # warns on every call; one decode pass would otherwise emit tens of thousands of warnings.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torchvision\.io")
        return _decode_files_impl(files)


def _decode_files_impl(files: list[Path]) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

    datas = []
    for f in files:
        try:
            datas.append(read_file(str(f)))
        except (OSError, RuntimeError) as err:
            raise CorruptDataError(f, f"cannot be read ({_short(err)})") from err

    def decode_one(i: int) -> torch.Tensor:
        try:
            return decode_image(datas[i], mode=ImageReadMode.UNCHANGED)
        except Exception as err:  # noqa: BLE001
            raise CorruptDataError(files[i], f"cannot be decoded as an image ({_short(err)})") from err

    images: list[torch.Tensor | None] = [None] * len(files)
    jpeg_idx = []
    for i, d in enumerate(datas):
        head = bytes(d[:8].tolist())
        if head[:3] == b"\xff\xd8\xff":
            jpeg_idx.append(i)
        elif head == b"\x89PNG\r\n\x1a\n":
            images[i] = decode_one(i)
        else:
            raise CorruptDataError(files[i], f"is neither JPEG nor PNG (starts with {head!r})")
    for start in range(0, len(jpeg_idx), _JPEG_BATCH):
        chunk = jpeg_idx[start:start + _JPEG_BATCH]
        try:
            decoded = decode_jpeg([datas[i] for i in chunk], mode=ImageReadMode.UNCHANGED)
        except Exception:  # noqa: BLE001 - find the offending file one by one
            decoded = [decode_one(i) for i in chunk]
        for i, img in zip(chunk, decoded):
            images[i] = img
    return images  # type: ignore[return-value]


def _stack(images: list[torch.Tensor], files: list[Path], channels: int, size: tuple[int, int]) -> torch.Tensor:
    out = torch.empty((len(images), channels, *size), dtype=torch.uint8)
    for i, (img, f) in enumerate(zip(images, files)):
        if tuple(img.shape[1:]) != size:
            raise CorruptDataError(f, f"is {img.shape[2]}x{img.shape[1]} (WxH) but the first image is "
                                      f"{size[1]}x{size[0]}; all images must share one size")
        c = img.shape[0]
        if channels == 1:
            img = img[:1]                       # GRAY or GRAY_ALPHA -> GRAY
        elif c in (1, 2):
            img = img[:1].expand(3, -1, -1)      # grayscale in a colour set -> RGB
        else:
            img = img[:3]                       # RGB or RGBA -> RGB (alpha dropped)
        out[i] = img
    return out


def _decode_tree(train_files: list[Path], test_files: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    files = train_files + test_files
    t0 = time.perf_counter()
    images = _decode_files(files)
    colour = any(img.shape[0] >= 3 for img in images)
    size = tuple(images[0].shape[1:])
    x = _stack(images, files, 3 if colour else 1, size)  # type: ignore[arg-type]
    log.info("image_folder: decoded %d images (%s) in %.1f s", len(files), tuple(x.shape[1:]),
             time.perf_counter() - t0)
    return x[: len(train_files)], x[len(train_files):]


def _load_cache(path: Path, classes: list[str], train_y: torch.Tensor, test_y: torch.Tensor) -> RawData | None:
    """The cached tensors if ``path`` holds a valid cache for exactly this tree, else None."""
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(obj, dict) or obj.get("version") != _CACHE_VERSION:
            raise ValueError("unexpected format or version")
        if obj.get("classes") != classes:
            raise ValueError("class list differs")
        for split, y in (("train", train_y), ("test", test_y)):
            x, cy = obj[f"{split}_x"], obj[f"{split}_y"]
            if not (isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and x.dim() == 4 and len(x) == len(y)):
                raise ValueError(f"{split}_x has the wrong dtype or shape")
            if not (isinstance(cy, torch.Tensor) and cy.dtype == torch.int64 and torch.equal(cy, y)):
                raise ValueError(f"{split}_y does not match the file list")
        return RawData(obj["train_x"], obj["train_y"], obj["test_x"], obj["test_y"], classes)
    except Exception as err:  # noqa: BLE001 - a cache is never trusted
        log.warning("image_folder: ignoring unusable cache %s (%s); decoding the images again", path, _short(err))
        return None


def _save_cache(path: Path, raw: RawData) -> None:
    obj = {"version": _CACHE_VERSION, "classes": raw.classes, "train_x": raw.train_x, "train_y": raw.train_y,
           "test_x": raw.test_x, "test_y": raw.test_y}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as err:
        log.warning("image_folder: could not write cache %s (%s); next run will decode again", path, _short(err))
        tmp.unlink(missing_ok=True)
        return
    for stale in path.parent.glob("tensors-*.pt"):  # caches of earlier versions of this tree
        if stale != path:
            with contextlib.suppress(OSError):
                stale.unlink()
                log.info("image_folder: removed stale cache %s", stale)


def image_folder(root: str, cache: bool = True) -> RawData:
    """Images in ``root/{train,test}/<class>/*.{png,jpg,jpeg}``, classes sorted by directory name.

    All images must share one size. The set is colour ``(N, 3, H, W)`` if any image has colour
    (grayscale images are replicated to RGB, alpha is dropped), else grayscale ``(N, 1, H, W)``.
    With ``cache``, the decoded tensors are stored in ``root/.cache/tensors-<hash>.pt`` (the hash
    covers relative paths, sizes and mtimes) and reused while the tree is unchanged; a cache that
    fails to load or validate is rebuilt.
    """
    root_path = Path(root).expanduser()
    split_dirs = {s: root_path / s for s in ("train", "test")}
    missing = [str(d) for d in split_dirs.values() if not d.is_dir()]
    if missing:
        raise _unavailable("The image folder", str(root), [(m, "no such directory") for m in missing],
                           extra="image_folder expects data.root/train/<class>/*.jpg and data.root/test/<class>/*.jpg. ")

    def class_dirs(d: Path) -> list[str]:
        return sorted(e.name for e in os.scandir(d) if e.is_dir() and not e.name.startswith("."))

    classes = class_dirs(split_dirs["train"])
    test_classes = class_dirs(split_dirs["test"])
    if classes != test_classes:
        only_train = sorted(set(classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(classes))
        raise CorruptDataError(root_path, f"train/ and test/ must hold the same class directories; only in train: "
                                          f"{only_train}, only in test: {only_test}")
    if not classes:
        raise CorruptDataError(split_dirs["train"], "holds no class directories")
    train_files, train_labels = _list_split(split_dirs["train"], classes)
    test_files, test_labels = _list_split(split_dirs["test"], classes)
    for split, files in (("train", train_files), ("test", test_files)):
        if not files:
            raise CorruptDataError(split_dirs[split], f"holds no {'/'.join(IMAGE_EXTENSIONS)} images")
    train_y = torch.tensor(train_labels, dtype=torch.int64)
    test_y = torch.tensor(test_labels, dtype=torch.int64)

    cache_path = None
    if cache:
        cache_path = root_path / ".cache" / f"tensors-{_manifest_hash(root_path, train_files + test_files)}.pt"
        cached = _load_cache(cache_path, classes, train_y, test_y)
        if cached is not None:
            log.info("image_folder: loaded %s from cache %s", cached, cache_path)
            return cached

    train_x, test_x = _decode_tree(train_files, test_files)
    raw = RawData(train_x, train_y, test_x, test_y, classes)
    if cache_path is not None:
        _save_cache(cache_path, raw)
    return raw


# --------------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------------
def _synthetic_split(templates: torch.Tensor, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k, c, s, _ = templates.shape
    y = torch.arange(n) % k
    y = y[torch.randperm(n, generator=g)]
    t = templates[y]                                              # (n, C, S, S)
    shift = max(1, s // 8)
    dy = torch.randint(-shift, shift + 1, (n,), generator=g)
    dx = torch.randint(-shift, shift + 1, (n,), generator=g)
    ar = torch.arange(s)
    rows = (ar[None, :] - dy[:, None]) % s                        # circular roll, per sample
    cols = (ar[None, :] - dx[:, None]) % s
    t = t.gather(2, rows[:, None, :, None].expand(n, c, s, s))
    t = t.gather(3, cols[:, None, None, :].expand(n, c, s, s))
    amp = 0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=g)         # contrast
    offset = 20.0 * torch.randn(n, 1, 1, 1, generator=g)          # brightness
    noise = 25.0 * torch.randn(n, c, s, s, generator=g)
    x = 128.0 + offset + 50.0 * amp * t + noise
    return x.round().clamp_(0, 255).to(torch.uint8), y.to(torch.int64)


def synthetic(image_size: int = 32, channels: int = 3, num_classes: int = 10, train_size: int = 2048,
              test_size: int = 512, seed: int = 0) -> RawData:
    """Procedurally generated class-structured images: a stand-in that needs no files.

    Class ``c`` has a fixed smooth template per channel: a sum of random low-frequency sinusoids,
    periodic over the image so circular shifts stay seamless, normalised to unit std. A sample is its
    class template rolled by up to ``image_size // 8`` pixels, scaled by a random contrast, shifted by
    a random brightness and covered with Gaussian noise, then rounded and clipped to uint8. Classes
    are balanced. Deterministic in ``seed``; the templates and each split draw from their own
    generators, so changing ``train_size`` leaves the test split unchanged.
    """
    for name, value, low in (("image_size", image_size, 2), ("channels", channels, 1),
                             ("num_classes", num_classes, 2), ("train_size", train_size, 1),
                             ("test_size", test_size, 0)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"synthetic: {name} must be an integer >= {low}, got {value!r}")
    s, fmax, waves = image_size, max(1, min(3, image_size // 8)), 6
    g = torch.Generator().manual_seed(seed)
    fy = torch.randint(0, fmax + 1, (num_classes, channels, waves), generator=g).float()
    fx = torch.randint(0, fmax + 1, (num_classes, channels, waves), generator=g).float()
    fx = torch.where((fy == 0) & (fx == 0), torch.ones_like(fx), fx)  # no constant waves
    phase = 2 * math.pi * torch.rand(num_classes, channels, waves, generator=g)
    weight = torch.randn(num_classes, channels, waves, generator=g)
    grid = 2 * math.pi * torch.arange(s, dtype=torch.float32) / s
    arg = (fy[..., None, None] * grid[:, None] + fx[..., None, None] * grid[None, :] + phase[..., None, None])
    templates = (weight[..., None, None] * torch.cos(arg)).sum(2)     # (K, C, S, S)
    templates = (templates - templates.mean((2, 3), keepdim=True)) / templates.std((2, 3), keepdim=True).clamp_min(1e-6)

    train_x, train_y = _synthetic_split(templates, train_size, torch.Generator().manual_seed(seed * 1_000_003 + 1))
    test_x, test_y = _synthetic_split(templates, test_size, torch.Generator().manual_seed(seed * 1_000_003 + 2))
    return RawData(train_x, train_y, test_x, test_y, [f"class_{i}" for i in range(num_classes)])


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
