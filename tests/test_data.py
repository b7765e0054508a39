"""Tests for engine.data: every loader on tiny files written here, offline (network failure is simulated)."""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg, encode_png

from engine import data
from engine.data import CorruptDataError, DataUnavailableError, RawData

# torchvision 0.29 deprecates its image codecs; the tests use them only to write fixtures.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download attempt fails at once, as it would offline."""
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    monkeypatch.setattr(data.idx, "DEBIAN_FASHION_MNIST", str(tmp_path / "no-debian-copy"))  # the module that reads it


# ------------------------------------------------------------------------------------------------
# Fashion-MNIST
# ------------------------------------------------------------------------------------------------
def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_fashion(directory: Path, gz: bool = True, n_train: int = 12, n_test: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        payload = idx_bytes(arr)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (directory / name).write_bytes(payload)
    return arrays


@pytest.mark.parametrize("layout,gz", [("flat", True), ("flat", False), ("torchvision", False)])
def test_fashion_mnist_layouts(tmp_path, no_debian, layout, gz):
    directory = tmp_path if layout == "flat" else tmp_path / "FashionMNIST" / "raw"
    arrays = write_fashion(directory, gz=gz)
    raw = data.fashion_mnist(str(tmp_path), download=False)
    assert raw.train_x.shape == (12, 1, 28, 28) and raw.test_x.shape == (5, 1, 28, 28)
    assert raw.train_x.dtype == torch.uint8 and raw.train_y.dtype == torch.int64
    assert torch.equal(raw.train_x[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.uint8)))
    assert torch.equal(raw.test_y, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)))
    assert raw.classes[0] == "T-shirt/top" and raw.num_classes == 10


def test_fashion_mnist_truncated_idx(tmp_path, no_debian):
    write_fashion(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptDataError, match="train-images-idx3-ubyte.*truncated"):
        data.fashion_mnist(str(tmp_path))


def test_fashion_mnist_bad_magic_and_bad_gzip(tmp_path, no_debian):
    write_fashion(tmp_path, gz=True)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(b"\x00\x00\x09\x01" + b"\x00" * 8))
    with pytest.raises(CorruptDataError, match="t10k-labels-idx1-ubyte.gz.*magic"):
        data.fashion_mnist(str(tmp_path))
    images = tmp_path / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:40])  # truncated gzip stream
    with pytest.raises(CorruptDataError, match="train-images-idx3-ubyte.gz"):
        data.fashion_mnist(str(tmp_path))


def test_fashion_mnist_unavailable(tmp_path, no_debian):
    root = tmp_path / "empty-root"
    with pytest.raises(DataUnavailableError) as info:
        data.fashion_mnist(str(root), download=True)
    msg = str(info.value)
    assert not isinstance(info.value, CorruptDataError)
    assert str(root) in msg and "no-debian-copy" in msg
    assert "network disabled" in msg and "data=synthetic" in msg and "dataset-fashion-mnist" in msg


def test_fashion_mnist_download_path(tmp_path, no_debian, monkeypatch):
    import socket

    import torchvision.datasets

    seen = {}

    class FakeFashionMNIST:  # stands in for a successful torchvision download
        def __init__(self, root, train=True, download=False):
            seen["timeout"] = socket.getdefaulttimeout()
            write_fashion(Path(root) / "FashionMNIST" / "raw", gz=False, n_train=3, n_test=2)

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    raw = data.fashion_mnist(str(tmp_path / "fresh"))
    assert raw.train_x.shape == (3, 1, 28, 28) and raw.test_x.shape == (2, 1, 28, 28)
    assert seen["timeout"] == data.DOWNLOAD_TIMEOUT_S and socket.getdefaulttimeout() is None


@pytest.mark.skipif(not Path(data.DEBIAN_FASHION_MNIST).is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_debian(tmp_path):
    raw = data.fashion_mnist(str(tmp_path / "nothing-here"), download=False)
    assert raw.train_x.shape == (60000, 1, 28, 28) and raw.test_x.shape == (10000, 1, 28, 28)
    assert torch.equal(torch.bincount(raw.train_y), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(raw.test_y), torch.full((10,), 1000))
    mean, std = data.channel_stats(raw.train_x)
    assert abs(mean.item() - 0.2860) < 1e-3 and abs(std.item() - 0.3530) < 1e-3


# ------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100
# ------------------------------------------------------------------------------------------------
def write_cifar(root: Path, kind: str, per_file: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    if kind == "cifar10":
        folder, files, label_key = "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels"
        meta_name, meta = "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]}
        k = 10
    else:
        folder, files, label_key = "cifar-100-python", ["train", "test"], b"fine_labels"
        meta_name, meta = "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                                   b"coarse_label_names": [f"k{i}".encode() for i in range(20)]}
        k = 100
    directory = root / folder
    directory.mkdir(parents=True)
    written = {}
    for name in files:
        x = rng.integers(0, 256, (per_file, 3072)).astype(np.uint8)
        y = rng.integers(0, k, per_file).tolist()
        (directory / name).write_bytes(pickle.dumps({b"batch_label": name.encode(), b"data": x, label_key: y,
                                                      b"filenames": [b"x.png"] * per_file}, protocol=2))
        written[name] = (x, y)
    (directory / meta_name).write_bytes(pickle.dumps(meta, protocol=2))
    return directory, written


def test_cifar10_pickles(tmp_path):
    _, written = write_cifar(tmp_path, "cifar10")
    raw = data.cifar10(str(tmp_path), download=True)  # dir present: no download attempted
    assert raw.train_x.shape == (20, 3, 32, 32) and raw.test_x.shape == (4, 3, 32, 32)
    x, y = written["data_batch_2"]
    assert torch.equal(raw.train_x[4:8], torch.from_numpy(x.reshape(4, 3, 32, 32)))
    assert raw.train_y[4:8].tolist() == y and raw.train_y.dtype == torch.int64
    assert raw.classes == [f"c{i}" for i in range(10)]


def test_cifar100_pickles(tmp_path):
    _, written = write_cifar(tmp_path, "cifar100", per_file=6)
    raw = data.cifar100(str(tmp_path / "cifar-100-python"))  # root may also be the extracted dir
    assert raw.train_x.shape == (6, 3, 32, 32) and raw.num_classes == 100
    assert raw.test_y.tolist() == written["test"][1]
    assert raw.classes[99] == "f99"


def test_cifar_corrupt_pickle(tmp_path):
    directory, _ = write_cifar(tmp_path, "cifar10")
    (directory / "data_batch_3").write_bytes((directory / "data_batch_3").read_bytes()[:500])
    with pytest.raises(CorruptDataError, match="data_batch_3"):
        data.cifar10(str(tmp_path))


def test_cifar_wrong_shape_and_foreign_globals(tmp_path):
    directory, _ = write_cifar(tmp_path, "cifar10")
    (directory / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(CorruptDataError, match="test_batch.*shape"):
        data.cifar10(str(tmp_path))
    (directory / "test_batch").write_bytes(pickle.dumps({b"data": os.getcwd, b"labels": []}))
    with pytest.raises(CorruptDataError, match="not allowed"):
        data.cifar10(str(tmp_path))


def test_cifar_download_path_and_bad_archive(tmp_path, monkeypatch):
    from torchvision.datasets import utils as tv_utils

    calls = []

    def fake_download_and_extract_archive(url, download_root, filename=None, md5=None, **kwargs):
        calls.append((url, filename, md5))
        write_cifar(Path(download_root), "cifar10", per_file=2)

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_download_and_extract_archive)
    raw = data.cifar10(str(tmp_path / "dl"))
    assert raw.train_x.shape == (10, 3, 32, 32) and calls[0][1] == "cifar-10-python.tar.gz"
    # A partial download left behind is reported, not silently re-used or ignored.
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(CorruptDataError, match="cifar-10-python.tar.gz.*md5"):
        data.cifar10(str(tmp_path / "partial"), download=False)


@pytest.mark.parametrize("loader", [data.cifar10, data.cifar100])
def test_cifar_unavailable(tmp_path, loader):
    root = tmp_path / "nowhere"
    with pytest.raises(DataUnavailableError) as info:
        loader(str(root), download=True)
    msg = str(info.value)
    assert str(root) in msg and "network disabled" in msg and "data=image_folder" in msg
    with pytest.raises(DataUnavailableError, match="download=False"):
        loader(str(root), download=False)


# ------------------------------------------------------------------------------------------------
# Image folder
# ------------------------------------------------------------------------------------------------
def write_folder(root: Path, fmt: str = "png", size=(8, 10), per_class: int = 3, classes=("cat", "dog", "emu")):
    g = torch.Generator().manual_seed(0)
    images = {}
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                img = torch.randint(0, 256, (3, *size), generator=g, dtype=torch.uint8)
                path = root / split / c / f"{i:03d}.{fmt}"
                encoded = encode_png(img) if fmt == "png" else encode_jpeg(img, quality=95)
                path.write_bytes(bytes(encoded.numpy()))
                images[path] = img
    return images


def test_image_folder_png_exact_and_cache(tmp_path):
    images = write_folder(tmp_path)
    raw = data.image_folder(str(tmp_path))
    assert raw.classes == ["cat", "dog", "emu"]
    assert raw.train_x.shape == (9, 3, 8, 10) and raw.test_x.shape == (9, 3, 8, 10)
    assert raw.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert torch.equal(raw.train_x[4], images[tmp_path / "train" / "dog" / "001.png"])  # PNG is lossless
    caches = list((tmp_path / ".cache").glob("tensors-*.pt"))
    assert len(caches) == 1
    again = data.image_folder(str(tmp_path))
    assert torch.equal(again.train_x, raw.train_x) and torch.equal(again.test_y, raw.test_y)
    # A changed tree gets a new cache; the stale one is removed.
    (tmp_path / "test" / "emu" / "002.png").unlink()
    changed = data.image_folder(str(tmp_path))
    assert len(changed.test_y) == 8
    assert [p.name for p in (tmp_path / ".cache").glob("tensors-*.pt")] != [caches[0].name]


def test_image_folder_jpeg_matches_uncached(tmp_path):
    write_folder(tmp_path, fmt="jpg", size=(16, 16))
    cold = data.image_folder(str(tmp_path), cache=False)
    assert not (tmp_path / ".cache").exists()
    assert cold.train_x.shape == (9, 3, 16, 16)
    assert torch.equal(data.image_folder(str(tmp_path)).train_x, cold.train_x)


def test_image_folder_grayscale(tmp_path):
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            img = torch.full((1, 5, 5), 7 if c == "a" else 200, dtype=torch.uint8)
            (tmp_path / split / c / "0.png").write_bytes(bytes(encode_png(img).numpy()))
    raw = data.image_folder(str(tmp_path), cache=False)
    assert raw.train_x.shape == (2, 1, 5, 5) and raw.train_x[1].unique().tolist() == [200]


def test_image_folder_corrupt_cache_is_rebuilt(tmp_path, caplog):
    write_folder(tmp_path, fmt="jpg")
    reference = data.image_folder(str(tmp_path), cache=False)
    data.image_folder(str(tmp_path))
    (cache,) = (tmp_path / ".cache").glob("tensors-*.pt")
    cache.write_bytes(cache.read_bytes()[:200])
    with caplog.at_level("WARNING", logger="engine.data"):
        rebuilt = data.image_folder(str(tmp_path))
    assert "unusable cache" in caplog.text
    assert torch.equal(rebuilt.train_x, reference.train_x) and torch.equal(rebuilt.test_x, reference.test_x)
    # A loadable cache with wrong contents is not trusted either.
    torch.save({"version": 1, "classes": reference.classes, "train_x": torch.zeros(1, 3, 2, 2, dtype=torch.uint8),
                "train_y": torch.zeros(1, dtype=torch.int64), "test_x": reference.test_x, "test_y": reference.test_y},
               cache)
    assert torch.equal(data.image_folder(str(tmp_path)).train_x, reference.train_x)
    assert torch.equal(torch.load(cache, weights_only=True)["train_x"], reference.train_x)


def test_image_folder_errors(tmp_path):
    write_folder(tmp_path, fmt="jpg")
    bad = tmp_path / "train" / "dog" / "001.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(CorruptDataError, match="dog/001.jpg"):
        data.image_folder(str(tmp_path))
    bad.write_bytes(b"GIF89a....")
    with pytest.raises(CorruptDataError, match="dog/001.jpg.*neither JPEG nor PNG"):
        data.image_folder(str(tmp_path))
    bad.write_bytes(bytes(encode_jpeg(torch.zeros(3, 9, 9, dtype=torch.uint8)).numpy()))
    with pytest.raises(CorruptDataError, match="dog/001.jpg.*share one size"):
        data.image_folder(str(tmp_path))
    (tmp_path / "test" / "yak").mkdir()
    with pytest.raises(CorruptDataError, match="yak"):
        data.image_folder(str(tmp_path))
    with pytest.raises(DataUnavailableError, match="no-such-root"):
        data.image_folder(str(tmp_path / "no-such-root"))


# ------------------------------------------------------------------------------------------------
# Synthetic data and helpers
# ------------------------------------------------------------------------------------------------
def test_synthetic_deterministic_and_shapes():
    small = dict(train_size=64, test_size=32)
    a, b = data.synthetic(seed=3, **small), data.synthetic(seed=3, **small)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_x, b.test_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.train_x, data.synthetic(seed=4, **small).train_x)
    # The test split does not depend on the train size.
    assert torch.equal(data.synthetic(seed=3, train_size=10, test_size=32).test_x, a.test_x)
    default = data.synthetic()
    assert default.train_x.shape == (2048, 3, 32, 32) and default.test_x.shape == (512, 3, 32, 32)
    assert torch.bincount(default.train_y).tolist() == [205] * 8 + [204] * 2  # balanced
    odd = data.synthetic(image_size=12, channels=1, num_classes=3, train_size=30, test_size=7, seed=1)
    assert odd.train_x.shape == (30, 1, 12, 12) and odd.test_x.shape == (7, 1, 12, 12)
    assert odd.classes == ["class_0", "class_1", "class_2"]
    with pytest.raises(ValueError, match="num_classes"):
        data.synthetic(num_classes=1)


def nearest_mean_accuracy(raw: RawData) -> float:
    xtr, xte = raw.train_x.flatten(1).float(), raw.test_x.flatten(1).float()
    means = torch.stack([xtr[raw.train_y == c].mean(0) for c in range(raw.num_classes)])
    pred = torch.cdist(xte, means).argmin(1)
    return (pred == raw.test_y).float().mean().item()


@pytest.mark.parametrize("kwargs", [{}, {"image_size": 28, "channels": 1}])
def test_synthetic_learnable(kwargs):
    raw = data.synthetic(train_size=500, test_size=300, **kwargs)
    acc = nearest_mean_accuracy(raw)
    assert acc > 2.0 / raw.num_classes, acc
    # ... but not trivially separable by mean brightness alone.
    assert acc < 1.0


def test_split_train_val():
    raw = data.synthetic(train_size=200, test_size=10, num_classes=4)
    (tx, ty), (vx, vy) = data.split_train_val(raw, 30, seed=0)
    assert len(tx) == 170 and len(vx) == 30 and len(ty) == 170 and len(vy) == 30
    # Disjoint and covering: every train image ends up in exactly one part.
    flat = lambda x: {bytes(row.numpy()) for row in x.flatten(1)}  # noqa: E731
    assert flat(tx).isdisjoint(flat(vx)) and flat(tx) | flat(vx) == flat(raw.train_x)
    assert torch.bincount(vy, minlength=4).tolist() == [8, 8, 7, 7]  # stratified, largest remainder
    (_, _), (vx2, vy2) = data.split_train_val(raw, 30, seed=0)
    assert torch.equal(vx, vx2) and torch.equal(vy, vy2)
    (_, _), (vx3, _) = data.split_train_val(raw, 30, seed=1)
    assert not torch.equal(vx, vx3)
    (tx0, _), (vx0, vy0) = data.split_train_val(raw, 0, seed=0)
    assert len(tx0) == 200 and vx0.shape == (0, 3, 32, 32) and vy0.dtype == torch.int64
    for bad in (200, 500, -1):
        with pytest.raises(ValueError, match="data.val_size"):
            data.split_train_val(raw, bad, seed=0)


def test_channel_stats():
    x = torch.zeros(10, 2, 4, 4, dtype=torch.uint8)
    x[:, 1] = 255
    x[:5, 0] = 51
    mean, std = data.channel_stats(x, chunk=3)
    assert torch.allclose(mean, torch.tensor([0.1, 1.0])) and torch.allclose(std, torch.tensor([0.1, 0.0]), atol=1e-6)
    ref = x.float().div(255)
    assert torch.allclose(std, ref.transpose(0, 1).flatten(1).std(1, unbiased=False), atol=1e-6)


def test_rawdata_validates():
    with pytest.raises(ValueError, match="uint8"):
        RawData(torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.int64), torch.zeros(1, 1, 2, 2, dtype=torch.uint8),
                torch.zeros(1, dtype=torch.int64), ["a"])
    with pytest.raises(ValueError, match="labels outside"):
        RawData(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 3]), torch.zeros(1, 1, 2, 2, dtype=torch.uint8),
                torch.zeros(1, dtype=torch.int64), ["a", "b"])
