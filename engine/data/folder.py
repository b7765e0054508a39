"""Image folders: ``root/{train,test}/<class>/*.{png,jpg,jpeg}``.

``image_folder(root)`` decodes every image once with ``torchvision.io`` and caches the tensors as
``root/.cache/tensors-<hash>.pt``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
import warnings
from pathlib import Path

import torch

from .core import CorruptDataError, RawData, _short, _unavailable

log = logging.getLogger(__name__)

__all__ = ["image_folder", "IMAGE_EXTENSIONS"]


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
