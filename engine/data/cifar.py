"""CIFAR-10 / CIFAR-100 from the extracted python pickles.

``cifar10(root)`` / ``cifar100(root)`` read ``cifar-10-batches-py`` / ``cifar-100-python`` with a
restricted unpickler; torchvision only downloads and extracts the official tarball when they are absent.
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import torch

from .core import DOWNLOAD_TIMEOUT_S, CorruptDataError, RawData, _network_timeout, _short, _unavailable

log = logging.getLogger(__name__)

__all__ = ["cifar10", "cifar100"]


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
    if directory is None and _fetch(tv_cls, root_path, name, download, attempts):
        directory = locate(record=False)
        if directory is None:
            attempts.append((str(root_path / tv_cls.filename), f"extracted, but {root_path / base_folder} is incomplete"))
    if directory is None:
        raise _unavailable(name, str(root), attempts,
                           extra=f"Place the extracted {base_folder}/ directory (or {tv_cls.filename}) in data.root. ")
    return _read(directory, train_files, test_files, meta_file, label_key, meta_key, num_classes)


def _fetch(tv_cls, root_path: Path, name: str, download: bool, attempts: list[tuple[str, str]]) -> bool:
    """Extract ``root/<official tarball>`` or download it with torchvision; True when something was extracted."""
    from torchvision.datasets import utils as tv_utils

    archive = root_path / tv_cls.filename
    if archive.is_file():
        if not tv_utils.check_integrity(str(archive), tv_cls.tgz_md5):
            raise CorruptDataError(archive, "md5 checksum does not match the official archive")
        try:
            log.info("%s: extracting %s", name, archive)
            tv_utils.extract_archive(str(archive), str(root_path))
            return True
        except Exception as err:  # noqa: BLE001
            raise CorruptDataError(archive, f"cannot be extracted ({_short(err)})") from err
    if not download:
        attempts.append(("download", "disabled (download=False)"))
        return False
    try:
        log.info("%s: downloading %s into %s", name, tv_cls.url, root_path)
        with _network_timeout(DOWNLOAD_TIMEOUT_S):
            tv_utils.download_and_extract_archive(tv_cls.url, download_root=str(root_path),
                                                  filename=tv_cls.filename, md5=tv_cls.tgz_md5)
        return True
    except Exception as err:  # noqa: BLE001 - reported with the other attempts
        attempts.append((f"download of {tv_cls.url}", _short(err)))
        return False


def _read(directory: Path, train_files: list[str], test_files: list[str], meta_file: str, label_key: str,
          meta_key: str, num_classes: int) -> RawData:
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
