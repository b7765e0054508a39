"""Datasets decoded once into uint8 tensors held in memory (airbench style).

Every loader returns a :class:`RawData` (uint8 ``(N, C, H, W)`` images, int64 labels, class names);
batching and augmentation work on those tensors directly (``engine/augment.py``). One module per concern:

  ``core``    :class:`RawData`, :class:`DataUnavailableError` / :class:`CorruptDataError`,
              :func:`split_train_val`, :func:`channel_stats`
  ``idx``     :func:`fashion_mnist` (idx files, Debian copy, torchvision download)
  ``cifar``   :func:`cifar10` / :func:`cifar100` (python pickles, restricted unpickler)
  ``folder``  :func:`image_folder` (``root/{train,test}/<class>/*.jpg``, decoded once and cached)
  ``synth``   :func:`synthetic` (procedural stand-in that needs no files)

Everything is re-exported here, so ``engine.data.<name>`` (e.g. Hydra ``_target_: engine.data.cifar10``)
is the stable import path. The module-level constants are re-exported for reading only: to change one
(e.g. in a test), patch the submodule that reads it, e.g. ``engine.data.idx.DEBIAN_FASHION_MNIST``.
Submodule names deliberately differ from the loader names so the functions never shadow a module.
"""
from .cifar import cifar10, cifar100
from .core import (
    DOWNLOAD_TIMEOUT_S,
    CorruptDataError,
    DataUnavailableError,
    RawData,
    channel_stats,
    split_train_val,
)
from .folder import IMAGE_EXTENSIONS, image_folder
from .idx import DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, fashion_mnist
from .synth import synthetic

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
